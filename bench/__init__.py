"""The pricemon benchmark: a synthetic competitor web, served on loopback, swept by pricemon and by Scrapy.

Run it with `bench/run` or `python -m bench`; see bench/README.md.
"""
