"""`pricemon demo`: bundled competitor shops (`shops`) and the scripted tour through the CLI (`scenario`)."""
