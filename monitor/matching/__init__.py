"""Discovery of competitors' product pages and matching them to our catalogue (issue 20).

    discover    sitemaps / crawl -> `discovered_pages` (identity of each product page)
    match       pages x our products -> `match_candidates` (score, why), auto-accept
    review      list and decide candidates; an accepted one becomes a listing through the
                same function as `pricemon import listings`
"""
