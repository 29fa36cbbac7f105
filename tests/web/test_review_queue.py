"""The review queue behind the workspace and the API: filters, sorts, keyset pages and the whole
filtered set, on real stores (SQLite and PostgreSQL) filled by the real import, sweep records and
`suggest`."""

from __future__ import annotations

from decimal import Decimal

import pytest

from monitor.store.review import ReviewFilters, ReviewQueryError, facets, review_ids, review_page
from tests.pricing.conftest import Market


@pytest.fixture
def queue(market: Market) -> Market:
    market.products(
        "sku,name,price,currency,cost,tags\n"
        "A-1,Alpha kettle,50.00,EUR,30.00,kitchen\n"
        "B-2,Beta toaster,50.00,EUR,45.00,kitchen\n"
        "C-3,Gamma lamp 100% wool,50.00,EUR,,living|sale\n"
        "D-4,Delta chair,20.00,EUR,10.00,living\n"
        "E-5,Epsilon desk,100.00,EUR,60.00,office\n"
    )
    market.listings([("A-1", "acme"), ("B-2", "acme"), ("C-3", "globex"), ("D-4", "globex"), ("E-5", "acme")])
    market.observe(
        {
            ("A-1", "acme"): "40.00",  # cut 20 %
            ("B-2", "acme"): "47.50",  # cut 5 %
            ("C-3", "globex"): "30.00",  # cut 40 %
            ("D-4", "globex"): "19.00",  # cut 5 %
            ("E-5", "acme"): "90.00",  # cut 10 %
        }
    )
    market.pricemon("suggest")
    return market


def _skus(page) -> list[str]:
    return [r.sku for r in page.rows]


def test_filters_select_what_they_say(queue: Market) -> None:
    with queue.store.session() as s:
        everything = review_page(s)
        assert everything.total == len(everything.rows) >= 4
        assert _skus(review_page(s, ReviewFilters(tag="kitchen"))) == sorted(
            _skus(review_page(s, ReviewFilters(tag="kitchen"))),
            key=lambda k: -abs(next(r.change_pct for r in everything.rows if r.sku == k)),
        )
        assert set(_skus(review_page(s, ReviewFilters(tag="kitchen")))) <= {"A-1", "B-2"}
        assert set(_skus(review_page(s, ReviewFilters(competitor="globex")))) <= {"C-3", "D-4"}
        assert "C-3" in _skus(review_page(s, ReviewFilters(q="100%")))  # LIKE wildcards are literal
        assert _skus(review_page(s, ReviewFilters(q="_"))) == []  # unescaped, "_" would match all
        assert _skus(review_page(s, ReviewFilters(q="gamma"))) == ["C-3"]
        big = review_page(s, ReviewFilters(min_change_pct=Decimal("15")))
        assert big.rows and all(abs(r.change_pct) >= 15 for r in big.rows)
        assert review_page(s, ReviewFilters(direction="raise")).total == 0
        low = review_page(s, ReviewFilters(margin_below=Decimal("20")))
        assert low.rows and all(r.margin_after_pct is not None and r.margin_after_pct < 20 for r in low.rows)
        assert "C-3" not in _skus(low)  # unknown cost: no margin to be below
        names = facets(s)
        assert names["tags"] == ["kitchen", "living", "office", "sale"]
        assert set(names["competitors"]) == {"acme", "globex", "initech"}


def test_rows_carry_the_market_figures(queue: Market) -> None:
    with queue.store.session() as s:
        row = next(r for r in review_page(s).rows if r.sku == "A-1")
    assert row.current_price == Decimal("50.00") and row.suggested_price < row.current_price
    assert row.change_pct < 0 and row.margin_before_pct == Decimal("40.0")
    assert row.competitor_median == Decimal("40.00") and row.index_before == Decimal("1.250")
    assert row.offers == 1 and row.newest_offer_at is not None and row.reason_steps


def test_keyset_pages_cover_each_row_once_in_every_sort(queue: Market) -> None:
    with queue.store.session() as s:
        total = review_page(s).total
        for sort in ("change", "impact", "sku", "name", "age", "margin"):
            for descending in (True, False):
                seen: list[int] = []
                cursor = None
                while True:
                    page = review_page(s, sort=sort, descending=descending, cursor=cursor, limit=2)
                    seen += [r.id for r in page.rows]
                    cursor = page.next_cursor
                    if cursor is None:
                        break
                assert len(seen) == len(set(seen)) == total, (sort, descending)
        with pytest.raises(ReviewQueryError, match="cursor"):
            review_page(s, cursor="garbage!")
        first = review_page(s, sort="sku", limit=1)
        with pytest.raises(ReviewQueryError, match="another sort"):
            review_page(s, sort="name", cursor=first.next_cursor)
        with pytest.raises(ReviewQueryError, match="sort"):
            review_page(s, sort="price; drop table")


def test_whole_filtered_set_is_what_the_filter_shows(queue: Market) -> None:
    with queue.store.session() as s:
        filters = ReviewFilters(tag="living")
        assert review_ids(s, filters) == sorted(r.id for r in review_page(s, filters, limit=500).rows)


def test_a_kept_count_is_exact_after_another_connection_commits(queue: Market) -> None:
    """PostgreSQL's totals are kept per snapshot: asking again counts nothing, until anything is
    committed elsewhere; a transaction's own writes are counted, never kept. SQLite counts each time."""
    from sqlalchemy import event, text
    from sqlalchemy.orm import Session

    from monitor.store.review import review_totals

    postgresql = queue.store.engine.dialect.name == "postgresql"
    counted: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        if "count(" in statement.lower():
            counted.append(statement)

    kitchen = ReviewFilters(tag="kitchen")
    event.listen(queue.store.engine, "before_cursor_execute", record)
    try:
        with queue.store.session() as s:
            first = review_totals(s, kitchen)
        assert first.count == 2 and counted
        counted.clear()
        with queue.store.session() as s:
            assert review_totals(s, kitchen) == first
        assert (counted == []) == postgresql

        # another connection (as another process would) rejects one: the next count sees it
        with queue.store.engine.connect() as other:
            other.execute(text(
                "UPDATE suggestions SET status = 'rejected' WHERE id = "
                "(SELECT min(s.id) FROM suggestions s JOIN products p ON p.id = s.product_id "
                "WHERE s.status = 'pending' AND p.sku = 'A-1')"
            ))
            other.commit()
        counted.clear()
        with queue.store.session() as s:
            after = review_totals(s, kitchen)
        assert after.count == 1 and counted

        # a transaction's own, uncommitted write is counted, and not kept for others
        with Session(queue.store.engine) as s:
            s.execute(text(
                "UPDATE suggestions SET status = 'rejected' WHERE status = 'pending' AND product_id = "
                "(SELECT id FROM products WHERE sku = 'B-2')"
            ))
            assert review_totals(s, kitchen).count == 0
            s.rollback()
        with queue.store.session() as s:
            assert review_totals(s, kitchen).count == 1
    finally:
        event.remove(queue.store.engine, "before_cursor_execute", record)


def test_a_text_search_of_few_products_reads_the_same_rows_by_id(queue: Market, monkeypatch) -> None:
    """A search that few products match is answered from their ids (`with_text_resolved`); the
    rows, their order, the pages, the total and the bulk-decision ids are those of the plain search."""
    from monitor.store import review

    def everything(q: str) -> list[object]:
        out: list[object] = []
        with queue.store.session() as s:
            for sort in ("change", "sku", "age"):
                for descending in (True, False):
                    pages, cursor = [], None
                    while True:
                        page = review_page(s, ReviewFilters(q=q), sort=sort, descending=descending, cursor=cursor,
                                           limit=1)
                        pages.append([(r.id, r.sku) for r in page.rows])
                        out.append(page.total)
                        cursor = page.next_cursor
                        if cursor is None:
                            break
                    out.append(pages)
            out.append(review_ids(s, ReviewFilters(q=q)))
        return out

    for q in ("a", "kettle", "A-1", "100%", "no such thing"):
        by_id = everything(q)
        monkeypatch.setattr(review, "TEXT_MATCHES_BY_ID", -1)  # never resolved: the plain LIKE
        plain = everything(q)
        monkeypatch.undo()
        assert by_id == plain, q
    with queue.store.session() as s:
        assert review.with_text_resolved(s, ReviewFilters(q="kettle")).product_ids is not None
