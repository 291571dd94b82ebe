"""Mint a token signed with JWT_SECRET, e.g. for the admin endpoints.

Usage: JWT_SECRET=... .venv/bin/python scripts/issue_token.py --role admin [--sub ops] [--ttl 3600]
(`scripts/issue_token` reads .data/jwt_secret when JWT_SECRET is unset, like `make run`.)
"""

from __future__ import annotations

import argparse

from leaderboard.run import load_settings
from leaderboard.serve.auth import issue_token


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=["player", "server", "admin"], default="admin")
    parser.add_argument("--sub", default="ops", help="user_id claim")
    parser.add_argument("--name", default="Operator")
    parser.add_argument("--region", default="GLOBAL")
    parser.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    args = parser.parse_args()
    settings = load_settings()
    print(issue_token(settings, args.sub, args.name, args.region, args.role, args.ttl))


if __name__ == "__main__":
    main()
