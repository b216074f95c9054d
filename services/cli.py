"""``linkhop``: run the local stack and services, migrate, manage domains, keys and cache.

The CLI is a composition root: it parses arguments and calls the same repositories and
helpers the services use; it holds no business rules of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import shlex
import signal
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import redis.asyncio as aioredis

from deploy.local import processes, stack
from services.management import writethrough
from services.management.domains import repository as domain_repo
from services.management.domains.hostnames import normalize_hostname
from shared import apikey_repository
from shared.linkrecord import RecordStore
from shared.logging import configure_logging
from shared.migrate import migrate
from shared.record_repository import iter_all_domains, iter_all_records
from shared.resources import create_redis
from shared.settings import (
    DEFAULT_MANAGEMENT_PORT,
    DEFAULT_REDIRECT_PORT,
    DEFAULT_STATS_PORT,
    CommonSettings,
)

DEMO_DOMAIN = "demo.linkhop.localhost"
SERVICE_PORTS = {
    "redirect": DEFAULT_REDIRECT_PORT,
    "management": DEFAULT_MANAGEMENT_PORT,
    "stats": DEFAULT_STATS_PORT,
}


def _paths() -> stack.StackPaths:
    return stack.StackPaths(root=stack.repo_root())


def _settings() -> CommonSettings:
    return CommonSettings()


async def _connect(settings: CommonSettings) -> asyncpg.Connection:
    return await asyncpg.connect(settings.database_url, timeout=10)


async def _team_id(conn: asyncpg.Connection, team: int | None) -> int:
    if team is not None:
        return team
    existing = await domain_repo.first_team(conn)
    return existing if existing is not None else await domain_repo.create_team(conn, "default")


async def add_domain(settings: CommonSettings, host: str, team: int | None = None) -> Any:
    """Creates the domain if it is new, writes its record through to Redis; returns the row."""
    hostname, unicode_hostname = normalize_hostname(host)
    conn = await _connect(settings)
    redis = create_redis(settings)
    try:
        async with conn.transaction():
            row = await domain_repo.get_by_hostname(conn, hostname)
            if row is None:
                row = await domain_repo.create_domain(
                    conn, team_id=await _team_id(conn, team), hostname=hostname,
                    unicode_hostname=unicode_hostname,
                )
            queued = await writethrough.queue(conn, writethrough.Changes(domain_ids=[row["id"]]))
        await writethrough.deliver(conn, redis, queued)
        return row
    finally:
        await redis.aclose()
        await conn.close()


async def create_key(
    settings: CommonSettings,
    *,
    public: bool = False,
    domain: str | None = None,
    expires: datetime | None = None,
    description: str | None = None,
    team: int | None = None,
) -> str:
    conn = await _connect(settings)
    try:
        domain_id = None
        team_id = await _team_id(conn, team)
        if domain is not None:
            row = await domain_repo.get_by_hostname(conn, normalize_hostname(domain)[0])
            if row is None:
                raise SystemExit(f"no such domain: {domain}")
            domain_id, team_id = row["id"], row["team_id"]
        secret, _ = await apikey_repository.create_key(
            conn, team_id=team_id, kind="public" if public else "private",
            domain_id=domain_id, description=description, expires_at=expires,
        )
        return secret
    finally:
        await conn.close()


async def rebuild_cache(settings: CommonSettings) -> tuple[int, int]:
    conn = await _connect(settings)
    redis: aioredis.Redis = create_redis(settings)
    store = RecordStore(redis)
    links = 0
    try:
        domains = await iter_all_domains(conn)
        for domain in domains:
            await store.put_domain(domain)
        async for hostname, path_key, record in iter_all_records(conn):
            await store.put_link(hostname, path_key, record)
            links += 1
        return len(domains), links
    finally:
        await redis.aclose()
        await conn.close()


def _start_backing_services() -> dict[str, str]:
    """The env that points services at the stack: external servers if configured."""
    paths = _paths()
    urls = stack.start(paths)
    return {
        "LINKHOP_DATABASE_URL": urls.database_url,
        "LINKHOP_REDIS_URL": urls.redis_url,
        "LINKHOP_KAFKA_BOOTSTRAP": urls.kafka_bootstrap,
    }


def cmd_dev(args: argparse.Namespace) -> int:
    env = _start_backing_services()
    os.environ.update(env)
    settings = _settings()
    asyncio.run(migrate(settings.database_url))
    var = _paths().root / "var"
    started = []
    for name, port in SERVICE_PORTS.items():
        if processes.running_pid(var, name) is None:
            process = processes.start_service(
                var, name, {**env, f"LINKHOP_{name.upper()}_PORT": str(port)}
            )
            started.append((name, port, process))
    for _name, port, process in started:
        processes.wait_healthy(f"http://127.0.0.1:{port}", process=process)
    asyncio.run(add_domain(settings, DEMO_DOMAIN))
    key = asyncio.run(create_key(settings, description="linkhop dev"))
    urls = {name: f"http://127.0.0.1:{port}" for name, port in SERVICE_PORTS.items()}
    dev_env = {
        "LINKHOP_REDIRECT_URL": urls["redirect"],
        "LINKHOP_MANAGEMENT_URL": urls["management"],
        "LINKHOP_STATS_URL": urls["stats"],
        "LINKHOP_DEMO_DOMAIN": DEMO_DOMAIN,
        "LINKHOP_API_KEY": key,
    }
    (var / "dev.env").write_text(
        "".join(f"{k}={shlex.quote(v)}\n" for k, v in dev_env.items())
    )
    print(_dev_banner(dev_env, var / "dev.env"))
    if args.detach:
        return 0
    print("Running; Ctrl-C stops the services (`linkhop stop` also stops the stack).")
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        processes.stop_all(var)
    return 0


def _dev_banner(env: dict[str, str], env_file: Path) -> str:
    key, domain = env["LINKHOP_API_KEY"], env["LINKHOP_DEMO_DOMAIN"]
    # A fresh demo path each run, so the printed create works however often dev runs.
    path = f"hello-{secrets.token_hex(3)}"
    mgmt, redirect, stats_url = (
        env["LINKHOP_MANAGEMENT_URL"], env["LINKHOP_REDIRECT_URL"], env["LINKHOP_STATS_URL"]
    )
    return f"""
linkhop is running.
  redirect    {redirect}   (send the short domain in the Host header)
  management  {mgmt}   (OpenAPI: {mgmt}/openapi.json, docs: {mgmt}/docs)
  stats       {stats_url}
  demo domain {domain}
  API key     {key}   (shown once; also in {env_file})

Try it (or `source {env_file}` and use the variables):
  curl -s -X POST {mgmt}/links -H 'Authorization: {key}' -H 'Content-Type: application/json' \\
       -d '{{"domain": "{domain}", "originalURL": "https://example.com/", "path": "{path}"}}'
  curl -si -H 'Host: {domain}' {redirect}/{path}
  curl -s -H 'Authorization: {key}' {stats_url}/statistics/link/<idString from the first answer>
"""


def cmd_stop(args: argparse.Namespace) -> int:
    paths = _paths()
    stopped = processes.stop_all(paths.root / "var")
    stack.stop(paths)
    print("stopped:", ", ".join([*stopped, "stack"]))
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    applied = asyncio.run(migrate(_settings().database_url))
    print("applied:", ", ".join(applied) if applied else "nothing (up to date)")
    return 0


def cmd_domains_add(args: argparse.Namespace) -> int:
    try:
        row = asyncio.run(add_domain(_settings(), args.host, args.team))
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"domain {row['hostname']} (id {row['id']}, team {row['team_id']})")
    return 0


def _parse_date(value: str) -> datetime:
    parsed = datetime.fromisoformat(value)
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def cmd_keys_create(args: argparse.Namespace) -> int:
    secret = asyncio.run(
        create_key(
            _settings(), public=args.public, domain=args.domain, expires=args.expires,
            description=args.description, team=args.team,
        )
    )
    print(secret)
    print("(shown once: linkhop stores only its hash)", file=sys.stderr)
    return 0


def cmd_keys_list(args: argparse.Namespace) -> int:
    async def run() -> list[Any]:
        conn = await _connect(_settings())
        try:
            return await apikey_repository.list_keys(conn, await _team_id(conn, args.team))
        finally:
            await conn.close()

    for row in asyncio.run(run()):
        state = "revoked" if row["revoked_at"] else "active"
        print(f"{row['id']}\t{row['prefix']}…\t{row['kind']}\t{state}\t"
              f"{row['expires_at'] or '-'}\t{row['description'] or ''}")
    return 0


def cmd_keys_revoke(args: argparse.Namespace) -> int:
    async def run() -> bool:
        conn = await _connect(_settings())
        try:
            return await apikey_repository.revoke_key(
                conn, await _team_id(conn, args.team), args.key_id
            )
        finally:
            await conn.close()

    if not asyncio.run(run()):
        print(f"no active key {args.key_id}", file=sys.stderr)
        return 1
    print(f"revoked key {args.key_id}")
    return 0


def cmd_cache_rebuild(args: argparse.Namespace) -> int:
    started = time.monotonic()
    domains, links = asyncio.run(rebuild_cache(_settings()))
    print(f"rebuilt {domains} domains and {links} links in {time.monotonic() - started:.1f}s")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="linkhop", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    dev = sub.add_parser("dev", help="start the stack and the three services")
    dev.add_argument("--detach", action="store_true", help="return once everything is ready")
    dev.set_defaults(func=cmd_dev)
    sub.add_parser("stop", help="stop the services and the local stack").set_defaults(
        func=cmd_stop
    )
    sub.add_parser("migrate", help="apply pending SQL migrations").set_defaults(func=cmd_migrate)

    domains = sub.add_parser("domains", help="manage domains").add_subparsers(
        dest="domains_command", required=True
    )
    add = domains.add_parser("add", help="add a domain")
    add.add_argument("host")
    add.add_argument("--team", type=int)
    add.set_defaults(func=cmd_domains_add)

    keys = sub.add_parser("keys", help="manage API keys").add_subparsers(
        dest="keys_command", required=True
    )
    create = keys.add_parser("create", help="create a key; prints the secret once")
    create.add_argument("--public", action="store_true", help="may only create links")
    create.add_argument("--domain", help="restrict the key to this domain")
    create.add_argument("--expires", type=_parse_date, help="ISO date or datetime")
    create.add_argument("--description")
    create.add_argument("--team", type=int)
    create.set_defaults(func=cmd_keys_create)
    listing = keys.add_parser("list", help="list keys (prefix only)")
    listing.add_argument("--team", type=int)
    listing.set_defaults(func=cmd_keys_list)
    revoke = keys.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("key_id", type=int)
    revoke.add_argument("--team", type=int)
    revoke.set_defaults(func=cmd_keys_revoke)

    cache = sub.add_parser("cache", help="the Redis records").add_subparsers(
        dest="cache_command", required=True
    )
    cache.add_parser("rebuild", help="rebuild Redis from Postgres").set_defaults(
        func=cmd_cache_rebuild
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    configure_logging(os.environ.get("LINKHOP_LOG_LEVEL", "WARNING"))
    args = build_parser().parse_args(argv)
    code: int = args.func(args)
    return code


if __name__ == "__main__":
    raise SystemExit(main())
