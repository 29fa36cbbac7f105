"""Discovery and matching commands: `discover`, `matches` (list, accept, reject)."""

from __future__ import annotations

import logging

import click

from monitor.cli.base import App, cli, json_option, pass_app, print_json, print_table
from monitor.errors import PricemonError

logger = logging.getLogger(__name__)


@cli.command("discover")
@click.argument("competitor")
@click.option("--sitemap", "sitemaps", multiple=True, help="Sitemap (or sitemap index, .xml.gz) to read; repeatable.")
@click.option("--start", "starts", multiple=True, help="Category page to crawl from; repeatable.")
@click.option("--limit", type=click.IntRange(min=1), help="Stop after this many product pages.")
@json_option
@pass_app
def discover(
    app: App, competitor: str, sitemaps: tuple[str, ...], starts: tuple[str, ...], limit: int | None, as_json: bool
) -> None:
    """Find COMPETITOR's product pages (sitemaps, else a crawl) and match them to our products.

    Without --sitemap or --start: the sitemaps of the config, else robots.txt's Sitemap: lines,
    else a crawl from the config's start_urls or base_url. Everything goes through the
    competitor's robots.txt, politeness and address rules.
    """
    from monitor.matching.discover import discover_competitor
    from monitor.settings import check_http_url

    for url in (*sitemaps, *starts):
        try:
            check_http_url(url)
        except ValueError as exc:
            raise PricemonError(f"{url!r}: {exc} (--sitemap/--start)") from None
    summary = discover_competitor(app.store(), app.settings, competitor, sitemaps=sitemaps, starts=starts, limit=limit)
    if as_json:
        print_json(summary.as_dict())
        return
    match = summary.match
    print_table(
        f"discover {competitor}",
        ["sitemaps", "fetched", "product pages", "new", "changed", "gone", "proposed", "auto-accepted", "conflicts"],
        [
            [
                summary.sitemaps,
                summary.fetched,
                summary.products,
                summary.new,
                summary.changed,
                summary.gone,
                match.proposed if match else 0,
                match.auto_accepted if match else 0,
                match.conflicts if match else 0,
            ]
        ],
    )
    for problem in summary.problems[:20]:
        click.echo(f"  {problem}", err=True)


@cli.group("matches", invoke_without_command=True)
@click.option("--status", type=click.Choice(["proposed", "accepted", "rejected"]), help="Only this status.")
@click.option("--competitor", help="Only this competitor.")
@click.option("--min-score", type=click.FloatRange(0, 1), help="Only candidates scoring at least this.")
@click.option("--limit", type=click.IntRange(min=1), help="At most this many, best first.")
@json_option
@pass_app
@click.pass_context
def matches(
    ctx: click.Context,
    app: App,
    status: str | None,
    competitor: str | None,
    min_score: float | None,
    limit: int | None,
    as_json: bool,
) -> None:
    """Match candidates: our product beside a competitor's page, with the score and why."""
    if ctx.invoked_subcommand is not None:
        return
    from monitor.matching.review import describe_why, list_matches

    with app.store().session() as session:
        rows = list_matches(session, status=status, competitor=competitor, min_score=min_score, limit=limit)
    if as_json:
        print_json(rows)
        return
    print_table(
        None,
        ["id", "status", "score", "method", "competitor", "sku", "page", "page price", "why"],
        [
            [
                r["id"],
                r["status"] + (" (re-match)" if r["rematch"] else ""),
                f"{r['score']:.2f}",
                r["method"],
                r["competitor"],
                r["sku"],
                f"{r['page']['name']} <{r['page']['url']}>",
                f"{r['page']['price'] or '?'} {r['page']['currency'] or ''}",
                (f"{r['rematch']} | " if r["rematch"] else "") + describe_why(r["why"]),
            ]
            for r in rows
        ],
    )


def _decide(app: App, ids: tuple[int, ...], min_score: float | None, competitor: str | None, decision: str) -> dict:
    from monitor.matching.review import decide_matches, select_ids

    if bool(ids) == (min_score is not None):
        raise click.UsageError("give match IDs or --min-score, not both")
    settings = app.settings
    with app.store().session() as session:
        chosen = list(ids) if ids else select_ids(session, min_score=min_score or 0, competitor=competitor)
        result = decide_matches(session, chosen, decision, by="cli", competitors=settings.competitors, strict=bool(ids))
    return result.as_dict()


def _show(data: dict, as_json: bool) -> None:
    if as_json:
        print_json(data)
        return
    verb = "accepted" if data["decision"] == "accept" else "rejected"
    click.echo(f"{verb}: {len(data['decided'])}, already so: {len(data['unchanged'])}, skipped: {len(data['skipped'])}")
    for key, reason in data["skipped"].items():
        click.echo(f"  match {key}: {reason}")
    if "listings" in data:
        listings = data["listings"]
        click.echo(f"listings: {listings['inserted']} new, {listings['updated']} updated")


@matches.command("accept")
@click.argument("ids", nargs=-1, type=int)
@click.option("--min-score", type=click.FloatRange(0, 1), help="Every proposed, conflict-free match scoring this.")
@click.option("--competitor", help="With --min-score: only this competitor.")
@json_option
@pass_app
def matches_accept(
    app: App, ids: tuple[int, ...], min_score: float | None, competitor: str | None, as_json: bool
) -> None:
    """Accept matches: each becomes a listing exactly as `import listings` makes it."""
    _show(_decide(app, ids, min_score, competitor, "accept"), as_json)


@matches.command("reject")
@click.argument("ids", nargs=-1, type=int, required=True)
@json_option
@pass_app
def matches_reject(app: App, ids: tuple[int, ...], as_json: bool) -> None:
    """Reject matches: the pairing is not proposed again unless its page changes."""
    _show(_decide(app, ids, None, None, "reject"), as_json)
