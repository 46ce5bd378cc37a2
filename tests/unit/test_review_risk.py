"""Review risk: which past causes an open request meets, by which rule, what blocks it, and what
the check says (no alert text, nothing a request's author can turn into a link or a mention)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from markdown_it import MarkdownIt

from bot.domain.changes import Effect, FileChange, ImageBump
from bot.domain.review_risk import (
    LOOKBACK,
    CauseSource,
    MatchRule,
    PastCause,
    ReviewedChange,
    Rules,
    assess,
    since,
    summary,
)

NOW = datetime(2030, 3, 1, 12, 0, tzinfo=UTC)
CAUSE_SHA = "a1b2c3d4e5f60718293a4b5c6d7e8f9012345678"
CHECKOUT = ("apps/checkout/**", "apps/checkout.yaml", "infra/**")  # the service's paths and shared paths


def edit(path: str, *effects: Effect, image: str | None = None, old_path: str | None = None) -> FileChange:
    bumps = (ImageBump(image=image, old="1.0", new="1.1"),) if image else ()
    return FileChange(path=path, status="R" if old_path else "M", old_path=old_path,
                      effects=effects or (Effect.CONFIG,), bumps=bumps)


def cause(*files: FileChange, incident: int = 7, days_ago: float = 3, sha: str = CAUSE_SHA,
          scope: tuple[str, ...] = (), source: CauseSource = CauseSource.VERDICT) -> PastCause:
    return PastCause(incident_id=incident, service="checkout", repo="gitops", sha=sha,
                     started_at=NOW - timedelta(days=days_ago), files=files, source=source, scope=scope)


def request(*files: FileChange, flags: tuple[str, ...] = (), head: str = "f" * 40,
            reverts: tuple[str, ...] = ()) -> ReviewedChange:
    return ReviewedChange(repo="gitops", number=12, head_sha=head, files=files, flags=flags, reverts=reverts)


DEPLOY = edit("apps/checkout/deploy.yaml", Effect.IMAGE, Effect.SCALE)


def test_same_file_is_flagged_as_the_same_file() -> None:
    """A request editing the file a cause edited meets it, marked same-file, with that path."""
    risk = assess(request(edit("apps/checkout/deploy.yaml")), [cause(DEPLOY)], now=NOW)
    assert risk.flagged
    assert [(m.cause.incident_id, m.paths, m.same_file) for m in risk.matches] == [
        (7, ("apps/checkout/deploy.yaml",), True)]
    assert risk.last_incident == NOW - timedelta(days=3)


def test_same_directory_is_flagged_by_default_and_not_under_the_file_rule() -> None:
    """A sibling file meets the cause under the directory rule (the default), not under the file rule."""
    sibling = request(edit("apps/checkout/configmap.yaml"))
    near = assess(sibling, [cause(DEPLOY)], now=NOW)
    assert [(m.paths, m.same_file, m.by) for m in near.matches] == [
        (("apps/checkout/configmap.yaml",), False, MatchRule.DIRECTORY)]
    assert not assess(sibling, [cause(DEPLOY)], now=NOW, rules=Rules(match=MatchRule.FILE)).flagged


def test_same_file_ranks_above_same_directory() -> None:
    """Of two causes, the one whose file the request edits is listed first, though older."""
    old_same = cause(DEPLOY, incident=1, days_ago=40)
    new_near = cause(edit("apps/checkout/service.yaml"), incident=2, days_ago=1)
    risk = assess(request(edit("apps/checkout/deploy.yaml")), [new_near, old_same], now=NOW)
    assert [m.cause.incident_id for m in risk.matches] == [1, 2]


def test_another_service_or_repository_is_not_flagged() -> None:
    """Another application's folder, a parent folder, or the same path in another repository meet nothing."""
    causes = [cause(DEPLOY)]
    for files in ([edit("apps/payments/deploy.yaml")], [edit("apps/kustomization.yaml")]):
        assert not assess(request(*files), causes, now=NOW).flagged
    elsewhere = replace(request(edit("apps/checkout/deploy.yaml")), repo="platform")
    assert not assess(elsewhere, causes, now=NOW).flagged


def test_files_with_no_effect_are_not_flagged_on_either_side() -> None:
    """Docs, CI and comment-only edits neither raise a flag nor make a cause's path count."""
    harmless = request(edit("apps/checkout/README.md", Effect.DOCS),
                       edit("apps/checkout/deploy.yaml", Effect.COSMETIC))
    assert not assess(harmless, [cause(DEPLOY)], now=NOW).flagged
    docs_cause = cause(edit("apps/checkout/notes.md", Effect.DOCS))
    assert not assess(request(edit("apps/checkout/deploy.yaml")), [docs_cause], now=NOW).flagged


def test_causes_older_than_the_lookback_do_not_count() -> None:
    """90 days by default, the playbook's lookback when given; without `now` no age limit applies."""
    change = request(edit("apps/checkout/deploy.yaml"))
    assert timedelta(days=90) == LOOKBACK
    assert assess(change, [cause(DEPLOY, days_ago=89)], now=NOW).flagged
    assert not assess(change, [cause(DEPLOY, days_ago=91)], now=NOW).flagged
    assert not assess(change, [cause(DEPLOY, days_ago=20)], now=NOW,
                      rules=Rules(lookback=timedelta(days=14))).flagged
    assert assess(change, [cause(DEPLOY, days_ago=400)]).flagged


def test_a_head_that_is_the_cause_itself_is_not_flagged() -> None:
    """The cause's own commit as the head (full or abbreviated sha) is not held against itself."""
    for head in (CAUSE_SHA, CAUSE_SHA[:7].upper()):
        assert not assess(request(DEPLOY, head=head), [cause(DEPLOY)], now=NOW).flagged
    assert assess(request(DEPLOY, head=CAUSE_SHA[:6] + "f" * 34), [cause(DEPLOY)], now=NOW).flagged


def test_a_revert_of_the_cause_is_not_flagged_for_it() -> None:
    """Undoing a cause restores what ran before it: that cause is left out, others still count."""
    other = cause(edit("apps/checkout/deploy.yaml"), incident=8, sha="b" * 40)
    risk = assess(request(DEPLOY, reverts=(CAUSE_SHA[:12],)), [cause(DEPLOY), other], now=NOW)
    assert [m.cause.incident_id for m in risk.matches] == [8]


def test_image_bumps_of_different_images_do_not_meet() -> None:
    """Both only bump images and not the same one: not flagged; the same image, or more than a bump, is."""
    bumped = cause(edit("apps/checkout/values.yaml", Effect.IMAGE, image="ghcr.io/acme/checkout"))
    redis = request(edit("apps/checkout/values.yaml", Effect.IMAGE, image="docker.io/redis"))
    assert not assess(redis, [bumped], now=NOW).flagged
    assert assess(redis, [bumped], now=NOW, rules=Rules(other_images=True)).flagged
    again = request(edit("apps/checkout/values.yaml", Effect.IMAGE, image="ghcr.io/acme/checkout"))
    assert assess(again, [bumped], now=NOW).flagged
    bump_and_env = request(edit("apps/checkout/values.yaml", Effect.IMAGE, Effect.CONFIG, image="docker.io/redis"))
    assert assess(bump_and_env, [bumped], now=NOW).flagged
    unknown_image = request(edit("apps/checkout/values.yaml", Effect.IMAGE))  # a tag with no image read
    assert assess(unknown_image, [bumped], now=NOW).flagged


def test_a_cause_counts_only_within_its_service_paths() -> None:
    """A commit over many applications is held against the one the incident hit, not its neighbours."""
    wide = cause(DEPLOY, edit("apps/payments/deploy.yaml", Effect.VERSION), scope=CHECKOUT)
    assert not assess(request(edit("apps/payments/deploy.yaml")), [wide], now=NOW).flagged
    assert assess(request(edit("apps/checkout/deploy.yaml")), [wide], now=NOW).flagged
    assert wide.did == (Effect.IMAGE, Effect.SCALE)  # what it did to checkout
    unscoped = replace(wide, scope=())
    assert assess(request(edit("apps/payments/deploy.yaml")), [unscoped], now=NOW).flagged


def test_the_service_rule_meets_any_path_of_the_cause_scope() -> None:
    """Under the service rule, any file in the service's paths meets the cause, said as such."""
    risk = assess(request(edit("apps/checkout/hpa/hpa.yaml")), [cause(DEPLOY, scope=CHECKOUT)], now=NOW,
                  rules=Rules(match=MatchRule.SERVICE))
    assert [(m.same_file, m.by) for m in risk.matches] == [(False, MatchRule.SERVICE)]
    assert "the service's paths" in summary(risk, now=NOW)


def test_a_rename_meets_the_file_under_its_old_name() -> None:
    """Moving the file a cause edited is editing that file."""
    moved = request(edit("apps/checkout/app/deploy.yaml", old_path="apps/checkout/deploy.yaml"))
    risk = assess(moved, [cause(DEPLOY)], now=NOW, rules=Rules(match=MatchRule.FILE))
    assert [m.same_file for m in risk.matches] == [True]


def test_block_on_rules_map_to_revert_safety_flags() -> None:
    """crd covers crd and api-version flags, migration covers database-migration and helm-hook; only when flagged."""
    flags = ("api-version: the change moved objects to another apiVersion (v1beta1 -> v1)",
             "helm-hook: Helm hooks (jobs such as migrations) ran once and are not undone by a revert")
    change = request(edit("apps/checkout/deploy.yaml"), flags=flags)
    assert assess(change, [cause(DEPLOY)], now=NOW, block_on=("crd", "migration", "secret")).block == (
        "crd", "migration")
    assert assess(change, [cause(DEPLOY)], now=NOW, block_on=("volume",)).block == ()
    assert assess(change, [], now=NOW, block_on=("crd",)).block == ()  # nothing met: nothing blocks


def test_summary_names_incidents_effects_flags_and_links() -> None:
    """Incident ids (linked when a link is given), what the cause did, how it is known, the flags, the block."""
    reverted = cause(edit("apps/checkout/values.yaml", Effect.IMAGE), incident=9, days_ago=2, sha="c" * 40,
                     source=CauseSource.REVERTED)
    risk = assess(request(DEPLOY, flags=("crd: CRDs may have converted stored objects",)),
                  [cause(DEPLOY), reverted], now=NOW, block_on=("crd",))
    text = summary(risk, now=NOW, link={7: "https://backout.example.com/incidents/7"})
    assert "- [INC-7](https://backout.example.com/incidents/7) (checkout): a1b2c3d (image, scale; confirmed by " \
           "a responder) touched the same file: `apps/checkout/deploy.yaml`" in text
    assert "- INC-9 (checkout): ccccccc (image; reverted) touched the same directory" in text
    assert "Last incident of these services started 2 days ago." in text
    assert "- `crd: CRDs may have converted stored objects`" in text
    assert text.endswith("Blocked by the playbook's rule: crd.")


def test_summary_of_a_request_that_meets_nothing() -> None:
    """One sentence, no incident."""
    text = summary(assess(request(DEPLOY), [], now=NOW), now=NOW)
    assert text == "No change in this request touched files whose changes caused incidents."


def test_summary_holds_at_most_limit_incidents_and_five_paths_each() -> None:
    """Twenty causes and twelve paths: `limit` lines of incidents, then a count; five paths, then a count."""
    paths = [f"apps/checkout/f{n:02d}.yaml" for n in range(12)]
    causes = [cause(*(edit(p) for p in paths), incident=n, sha=f"{n:040x}") for n in range(1, 21)]
    text = summary(assess(request(*(edit(p) for p in paths)), causes, now=NOW), now=NOW, limit=4)
    items = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(items) == 5
    assert items[-1] == "- and 16 more"
    assert items[0].endswith("`apps/checkout/f04.yaml` and 7 more")
    assert len(text.splitlines()) <= 4 + 1 + 4


def test_summary_has_no_alert_text_and_no_file_notes() -> None:
    """Only what Git and Backout know: a file's notes (config values) are not repeated."""
    secret_note = FileChange(path="apps/checkout/deploy.yaml", status="M", effects=(Effect.CONFIG,),
                             notes=("env DB_PASSWORD hunter2 -> hunter3",))
    text = summary(assess(request(secret_note), [cause(secret_note)], now=NOW), now=NOW)
    assert "hunter" not in text
    assert "DB_PASSWORD" not in text


def test_what_the_request_author_wrote_renders_as_code_only() -> None:
    """A path or flag carrying Markdown renders as code: no link, no image, no mention outside code."""
    hostile = "apps/checkout/`x` [click](evil.example) @acme-oncall ![i](evil.png) <b>.yaml"
    flag = "api-version: the change moved objects (v1 -> [x](https://evil.example/)) @acme/oncall `y`"
    risk = assess(request(edit(hostile), flags=(flag,)), [cause(DEPLOY)], now=NOW)
    assert risk.flagged
    html = MarkdownIt("commonmark").render(summary(risk, now=NOW))
    assert "<a " not in html
    assert "<img" not in html
    outside_code = html
    while "<code>" in outside_code:
        start = outside_code.index("<code>")
        outside_code = outside_code[:start] + outside_code[outside_code.index("</code>", start) + 7:]
    assert "@acme" not in outside_code
    assert "evil" not in outside_code


def test_since_says_the_largest_whole_unit() -> None:
    """Days, hours or minutes, so the comment does not change at every reassessment."""
    assert since(timedelta(days=40, hours=3, seconds=17)) == "40 days"
    assert since(timedelta(days=1, hours=23)) == "1 day"
    assert since(timedelta(hours=5, minutes=59)) == "5 hours"
    assert since(timedelta(minutes=2, seconds=5)) == "2 minutes"
    assert since(timedelta(seconds=30)) == "less than a minute"
