"""The README is the manual: its configuration reference, examples, mapping table and links are
checked against the code, so a key added (or renamed) without its documentation fails here."""

from __future__ import annotations

import argparse
import dataclasses
import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from pixelrelay import cli
from pixelrelay.config import (
    ConsentSettings,
    DeliverySettings,
    DestinationSettings,
    Secret,
    ServerSettings,
    SessionSettings,
    Settings,
    SourceSettings,
    StorageSettings,
    parse_settings,
)
from pixelrelay.destinations import REGISTRY
from pixelrelay.destinations.tiktok.mapping import default_tiktok_name
from pixelrelay.ops.preflight import findings

README = (Path(__file__).parents[2] / "README.md").read_text(encoding="utf-8")
SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings, "storage": StorageSettings, "sources": SourceSettings,
    "destinations": DestinationSettings, "delivery": DeliverySettings,
    "consent": ConsentSettings, "sessions": SessionSettings}
ENV = {"PIXELRELAY_ADMIN_TOKEN": "admin-token-0123456789", "BACKEND_KEY": "backend-key-0123",
       "SHOPIFY_WEBHOOK_SECRET": "shpss_0123456789", "TIKTOK_ACCESS_TOKEN": "tok-0123456789",
       "PGPASSWORD": "pw"}


def section(title: str) -> str:
    """The text under `## title` up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", README, re.S | re.M)
    assert match, f"README has no section {title!r}"
    return match.group(1)


def reference() -> dict[str, str]:
    """`section.key` -> its default cell, from the configuration reference tables."""
    rows = re.findall(r"^\| `([a-z_]+\.[a-z_]+)` \| (.+?) \|", section("Configuration reference"),
                      re.M)
    keys = [k for k, _ in rows]
    assert len(keys) == len(set(keys)), "a key is documented twice"
    return dict(rows)


def plain(value: object) -> object:
    """A settings default as TOML would write it."""
    if isinstance(value, Secret):
        return value.reveal()
    if isinstance(value, tuple):
        return list(value)
    return value


def test_every_setting_is_documented_and_nothing_else() -> None:
    documented = set(reference())
    in_code = {f"{name}.{f.name}" for name, cls in SECTIONS.items()
               for f in dataclasses.fields(cls) if f.name != "platform"}
    # Each destination type's own keys sit in the same [[destinations]] table.
    in_code |= {f"destinations.{k}" for plugin in REGISTRY.values() for k in plugin.keys}
    assert in_code - documented == set(), "settings missing from the README's reference"
    assert documented - in_code == set(), "the README documents keys the code does not have"
    top = {f.name for f in dataclasses.fields(Settings)} - {"sandbox"}  # sandbox: no config
    assert top == set(SECTIONS)


REQUIRED = {"sources.name": "backend", "sources.key": "k", "sources.secret": "s",
            "destinations.name": "tiktok", "destinations.pixel_code": "C9ABC1234567890",
            "destinations.access_token": "t"}


def config(tables: dict[str, dict[str, Any]]) -> Settings:
    raw: dict[str, Any] = {k: v for k, v in tables.items() if k not in ("sources", "destinations")}
    raw["sources"] = [tables["sources"]]
    raw["destinations"] = [tables["destinations"]]
    return parse_settings(raw, {})


def test_documented_defaults_are_what_the_gateway_uses() -> None:
    """A config with only the required keys reads as the documented defaults, and one with
    every documented key written out (at its default) reads the same: every key is known."""
    minimal: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    full: dict[str, dict[str, Any]] = {name: {} for name in SECTIONS}
    documented: dict[str, object] = {}
    # The config is a TikTok destination's: another type's own keys are not written.
    others = {f"destinations.{k}" for p in REGISTRY.values() if p.type != "tiktok"
              for k in p.keys} - {f"destinations.{k}" for k in REGISTRY["tiktok"].keys}
    for key, cell in reference().items():
        if key in others:
            continue
        name, field = key.split(".")
        if cell.startswith("*required"):
            if key in REQUIRED:  # another destination type's required key: not this config's
                minimal[name][field] = full[name][field] = REQUIRED[key]
            continue
        literal = re.fullmatch(r"`(.*)`", cell)
        assert literal, f"{key}: the default must be a TOML literal in backticks, got {cell}"
        full[name][field] = documented[key] = tomllib.loads(f"v = {literal.group(1)}")["v"]
    if "kind" in minimal["sources"]:
        del minimal["sources"]["kind"]
    defaults = config(minimal)
    assert config(full) == defaults
    objects = {"server": defaults.server, "storage": defaults.storage,
               "sources": defaults.sources[0], "destinations": defaults.destinations[0],
               "delivery": defaults.delivery, "consent": defaults.consent,
               "sessions": defaults.sessions}
    for key, value in documented.items():
        name, field = key.split(".")
        holder = objects[name]
        if not hasattr(holder, field) and name == "destinations":
            holder = defaults.destinations[0].platform  # a key of the type's own
            if not hasattr(holder, field):
                continue  # another destination type's key
        actual = plain(getattr(holder, field))
        assert actual == value, f"{key}: README says {value!r}, the gateway uses {actual!r}"


def toml_blocks(text: str) -> list[str]:
    return re.findall(r"```toml\n(.*?)```", text, re.S)


def test_the_production_example_parses_and_passes_the_pre_flight() -> None:
    example = toml_blocks(section("Configure for production"))[0]
    settings = parse_settings(tomllib.loads(example), ENV)
    kinds = {s.kind for s in settings.sources}
    assert kinds == {"server", "browser", "shopify"}
    assert settings.destinations[0].api_url == "https://business-api.tiktok.com"
    errors = [f for f in findings(settings) if f.level == "error"]
    assert errors == []


def test_the_shopify_example_is_a_valid_source_and_its_url_is_the_route() -> None:
    shopify = section("Sources").split("### Shopify", 1)[1]
    raw = tomllib.loads(textwrap_dedent(toml_blocks(shopify)[0]))
    raw["destinations"] = [{"name": "t", "pixel_code": "C9ABC1234567890",
                            "access_token": "x"}]
    source = parse_settings(raw, ENV).sources[0]
    assert source.kind == "shopify"
    assert f"/v1/webhooks/shopify/{source.name}`" in shopify
    for topic in ("orders/create", "orders/paid", "checkouts/create"):
        assert f"`{topic}`" in shopify


def textwrap_dedent(block: str) -> str:
    lines = block.splitlines()
    indent = min(len(x) - len(x.lstrip()) for x in lines if x.strip())
    return "\n".join(x[indent:] for x in lines)


@pytest.mark.parametrize("row", re.findall(r"^\| ([A-Z][^|]*) \| ([A-Za-z /]+) \|$",
                                           section("Event names"), re.M))
def test_the_default_mapping_table_is_the_mapping(row: tuple[str, str]) -> None:
    incoming, tiktok = row
    names = [n.strip() for n in incoming.split(",")]
    targets = [t.strip() for t in tiktok.split("/")]
    if len(targets) > 1:  # "A / B | C / D": pairs
        names = [n.strip() for n in incoming.split("/")]
    for i, name in enumerate(names):
        assert default_tiktok_name(name) == targets[min(i, len(targets) - 1)], name


def anchor(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_every_internal_link_names_a_heading() -> None:
    anchors = {anchor(h) for h in re.findall(r"^#{1,4} (.+)$", README, re.M)}
    links = set(re.findall(r"\]\(#([^)]+)\)", README))
    assert links, "the contents line links the sections"
    assert links - anchors == set()


def commands() -> list[tuple[str, str, argparse.ArgumentParser]]:
    """(`pixelrelay report gap`, its line in the parent's --help, its parser) for every
    command and subcommand, from the parser `pixelrelay` runs."""
    out = []

    def walk(prefix: str, parser: argparse.ArgumentParser) -> None:
        for action in parser._actions:  # argparse keeps subcommands on a private list
            if isinstance(action, argparse._SubParsersAction):
                lines = {a.dest: a.help or "" for a in action._choices_actions}
                for name, child in action.choices.items():
                    out.append((f"{prefix} {name}", lines.get(name, ""), child))
                    walk(f"{prefix} {name}", child)

    walk("pixelrelay", cli._parser())
    return out


def test_every_command_has_a_description_in_the_help() -> None:
    listed = cli._parser().format_help()
    found = commands()
    assert {"pixelrelay serve", "pixelrelay import", "pixelrelay report gap"} <= {
        c for c, _l, _p in found}
    for command, line, parser in found:
        if command.count(" ") == 1:
            assert command.split()[1] in listed, command
        assert line.strip(), f"{command}: no line in its parent's --help"
        assert (parser.description or "").strip(), f"{command} --help: no description"


def test_the_command_line_section_names_every_command() -> None:
    text = section("Command line")
    missing = [c for c, _l, _p in commands() if f"`{c}" not in text]
    assert missing == []
