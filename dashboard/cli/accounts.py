"""Account commands: ``login``, ``logout``, ``whoami``, ``users ...``, ``tokens ...``.

``facetrail login NAME --password-stdin [--json]``
    Signs in (recorded; failed sign-ins too, and locked out after too many) and prints
    the session token (JSON: ``token``, ``expires_at``, ...); the token is kept in a 0600
    file under the user's config directory, one per database (the session it replaces
    there is signed out). ``$FACETRAIL_TOKEN`` overrides that file.
``facetrail logout``
    Signs the saved session out (recorded) and deletes its file.
``facetrail users add NAME --role ROLE --password-stdin``
    Needs an admin's session, except for the very first account, which must be an admin.
    ``users list``, ``users role NAME --role R``, ``users password [NAME]``,
    ``users disable NAME``, ``users enable NAME``: admins (one's own password: anyone,
    with the current password).
``facetrail accounts list|disable|enable|reset-password|set-role NAME``
    The same actions under an admin's verbs (``set-role NAME --role R``,
    ``reset-password NAME --password-stdin``); an admin cannot disable or re-role themselves.
``facetrail tokens create USER [--label TEXT] [--days N]``, ``tokens list``, ``tokens revoke ID``
    API tokens for scripts, issued and revoked by admins; the token is shown once and
    stored only hashed.

Every change and every refusal is a record in the audit trail. Refusals (not signed in,
wrong role, bad input) exit 2.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from typing import Any

from audit import ROLES, AuditError, Credential, NotAuthenticated, normalize_name
from core import BadInput, RecognitionError, Settings, StorageError
from dashboard.cli.common import (
    EXIT_OK,
    emit,
    fail,
    forget_session,
    runtime,
    save_session,
    saved_session,
)

__all__ = ["register"]

_ERRORS = (RecognitionError, AuditError, StorageError)


def register(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """Add the account commands to the ``facetrail`` parser."""
    login = subparsers.add_parser("login", parents=parents,
                                  help="sign in; prints a session token and keeps it for this database")
    login.add_argument("name")
    login.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    login.set_defaults(handler=_login)
    logout = subparsers.add_parser("logout", parents=parents, help="sign the saved session out")
    logout.set_defaults(handler=_logout)
    whoami = subparsers.add_parser("whoami", parents=parents, help="the signed-in account")
    whoami.set_defaults(handler=_whoami)

    users = subparsers.add_parser("users", help="accounts (admins; the first account needs no sign-in)")
    usub = users.add_subparsers(dest="users_command", metavar="ACTION")
    usub.required = True
    add = usub.add_parser("add", parents=parents, help="create an account (password prompted, or --password-stdin)")
    add.add_argument("name")
    add.add_argument("--role", required=True, choices=ROLES)
    add.add_argument("--password-stdin", action="store_true", help="read the password from the first line of stdin")
    add.set_defaults(handler=_users_add)
    ulist = usub.add_parser("list", parents=parents, help="list accounts")
    ulist.set_defaults(handler=_users_list)
    role = usub.add_parser("role", parents=parents, help="change an account's role")
    role.add_argument("name")
    role.add_argument("--role", required=True, choices=ROLES)
    role.set_defaults(handler=_users_role)
    password = usub.add_parser("password", parents=parents,
                               help="change a password: your own (current, then new) or, as an admin, anyone's")
    password.add_argument("name", nargs="?", help="whose (default: the signed-in account)")
    password.add_argument("--password-stdin", action="store_true",
                          help="read the passwords from stdin, one per line (your own: the current one first)")
    password.set_defaults(handler=_users_password)
    for action, text in (("disable", "disable an account (its sessions and tokens are revoked)"),
                         ("enable", "enable a disabled account (and lift a sign-in lockout)")):
        p = usub.add_parser(action, parents=parents, help=text)
        p.add_argument("name")
        p.set_defaults(handler=_users_disable if action == "disable" else _users_enable)
    _register_accounts(subparsers, parents)

    tokens = subparsers.add_parser("tokens", help="API tokens for scripts (admins)")
    tsub = tokens.add_subparsers(dest="tokens_command", metavar="ACTION")
    tsub.required = True
    create = tsub.add_parser("create", parents=parents, help="issue an API token for an account (shown once)")
    create.add_argument("user")
    create.add_argument("--label", help="what the token is for")
    create.add_argument("--days", type=float, help="lifetime in days (default: $FACETRAIL_TOKEN_DAYS, else 90)")
    create.set_defaults(handler=_tokens_create)
    tlist = tsub.add_parser("list", parents=parents, help="list API tokens (and, with --sessions, sign-in sessions)")
    tlist.add_argument("--user", help="only this account's")
    tlist.add_argument("--sessions", action="store_true", help="include sign-in sessions")
    tlist.set_defaults(handler=_tokens_list)
    revoke = tsub.add_parser("revoke", parents=parents, help="revoke an API token or a session by its id")
    revoke.add_argument("id")
    revoke.set_defaults(handler=_tokens_revoke)


def _register_accounts(subparsers: Any, parents: list[argparse.ArgumentParser]) -> None:
    """``accounts list|disable|enable|reset-password|set-role``: the admin's verbs for the ``users`` handlers."""
    group = subparsers.add_parser("accounts", help="administer accounts (admins): the same actions as `users`")
    asub = group.add_subparsers(dest="accounts_command", metavar="ACTION")
    asub.required = True
    alist = asub.add_parser("list", parents=parents, help="list accounts with their last sign-in")
    alist.set_defaults(handler=_users_list)
    for action, text, handler in (
        ("disable", "disable an account (its sessions and tokens are revoked; not your own)", _users_disable),
        ("enable", "enable a disabled account (and lift a sign-in lockout)", _users_enable),
    ):
        p = asub.add_parser(action, parents=parents, help=text)
        p.add_argument("name")
        p.set_defaults(handler=handler)
    reset = asub.add_parser("reset-password", parents=parents,
                            help="set another account's password (its sign-in sessions are signed out)")
    reset.add_argument("name")
    reset.add_argument("--password-stdin", action="store_true", help="read the new password from stdin")
    reset.set_defaults(handler=_users_password)
    role = asub.add_parser("set-role", parents=parents, help="change an account's role (not your own)")
    role.add_argument("name")
    role.add_argument("--role", required=True, choices=ROLES)
    role.set_defaults(handler=_users_role)


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env().with_db(args.db)


def _read_lines(count: int) -> list[str]:
    lines = [sys.stdin.readline().rstrip("\r\n") for _ in range(count)]
    if not all(lines):
        raise BadInput(f"expected {count} non-empty line(s) on stdin (a password per line)")
    return lines


def _new_password(args: argparse.Namespace, name: str) -> str:
    if args.password_stdin:
        return _read_lines(1)[0]
    first = getpass.getpass(f"new password for {name}: ")
    if getpass.getpass("again: ") != first:
        raise BadInput("the passwords differ")
    return first


# -- signing in and out --------------------------------------------------------------------------------


def _login(args: argparse.Namespace) -> int:
    settings = _settings(args)
    try:
        password = _read_lines(1)[0] if args.password_stdin else getpass.getpass(f"password for {args.name}: ")
        rt = runtime(args)
        previous = saved_session(settings)[0]
        actor = rt.sign_in(args.name, password)
        path = save_session(settings, actor)
        if previous is not None:  # the session this one replaces in the file is signed out, not left live
            try:
                rt.accounts.sign_out(rt.accounts.authenticate(previous))
            except NotAuthenticated:  # it had ended already: nothing left to sign out
                pass
    except _ERRORS as err:
        return fail(args, err)
    payload = {"token": actor.token, "expires_at": actor.expires_at, "name": actor.name, "role": actor.role,
               "credential_id": actor.credential_id, "session_file": str(path)}
    if not args.json:
        sys.stderr.write(f"facetrail: signed in as {actor.name} ({actor.role}) until {actor.expires_at}; "
                         f"session kept in {path}\n")
    emit(args, payload, actor.token)
    return EXIT_OK


def _logout(args: argparse.Namespace) -> int:
    settings = _settings(args)
    had_file = settings.token is None and saved_session(settings)[0] is not None
    try:
        rt = runtime(args)
        actor = rt.actor()
        if actor is None and had_file:  # the saved session had ended already: nothing left to sign out
            forget_session(settings)
            why = rt.accounts.unauthenticated
            emit(args, {"signed_out": False, "reason": why, "session_file_removed": True},
                 f"the saved session had already ended ({why}); its file is removed")
            return EXIT_OK
        if actor is not None and actor.method == "api_token":
            raise BadInput(f"{actor.credential_id} is an API token: an admin revokes it with "
                           f"`facetrail tokens revoke {actor.credential_id}`")
        rt.sign_out()  # not signed in: refused (recorded), exit 2
    except _ERRORS as err:
        return fail(args, err)
    assert actor is not None
    removed = forget_session(settings) if settings.token is None else False
    emit(args, {"signed_out": True, "name": actor.name, "session_file_removed": removed},
         f"signed out {actor.name}")
    return EXIT_OK


def _whoami(args: argparse.Namespace) -> int:
    rt = runtime(args)
    actor = rt.actor()
    if actor is None:
        reason = rt.accounts.unauthenticated or "not signed in"
        return fail(args, NotAuthenticated(f"{reason}: {rt.sign_in_hint}"))
    emit(args, actor.to_dict(), f"{actor.name} ({actor.role}, {actor.method} {actor.credential_id}, "
                                f"until {actor.expires_at})")
    return EXIT_OK


# -- accounts ------------------------------------------------------------------------------------------


def _users_add(args: argparse.Namespace) -> int:
    try:
        password = _new_password(args, args.name)
        rt = runtime(args)
        done = rt.accounts.add_user(rt.actor(), args.name, args.role, password)
    except _ERRORS as err:
        return fail(args, err)
    user = done.result
    emit(args, {**user.to_dict(), "audit_seq": done.seq}, f"created {user.role} {user.name} (record #{done.seq})")
    return EXIT_OK


def _users_list(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        users = rt.accounts.list_users(rt.actor())
    except _ERRORS as err:
        return fail(args, err)
    text = "\n".join(f"{u.name:20} {u.role:9} {u.created_at}  last sign-in {u.last_sign_in or 'never'}"
                     f"{'  (disabled)' if u.disabled else ''}"
                     for u in users) or "no accounts yet: facetrail users add"
    emit(args, [u.to_dict() for u in users], text)
    return EXIT_OK


def _users_role(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        done = rt.accounts.set_role(rt.actor(), args.name, args.role)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {**done.result.to_dict(), "audit_seq": done.seq},
         f"{done.result.name} is now a {done.result.role} (record #{done.seq})")
    return EXIT_OK


def _users_password(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        actor = rt.actor()
        name = args.name or (actor.name if actor else "")
        own = actor is not None and normalize_name(name) == actor.name
        current = None
        if own:
            if args.password_stdin:
                current, new = _read_lines(2)
            else:
                current = getpass.getpass(f"current password for {name}: ")
                new = _new_password(args, name)
        else:
            new = _new_password(args, name or "?")
        done = rt.accounts.set_password(actor, name, new, current_password=current)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {**done.result.to_dict(), "audit_seq": done.seq},
         f"password of {done.result.name} changed (record #{done.seq}); its other sessions are signed out")
    return EXIT_OK


def _set_disabled(args: argparse.Namespace, disabled: bool) -> int:
    try:
        rt = runtime(args)
        done = rt.accounts.set_disabled(rt.actor(), args.name, disabled)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {**done.result.to_dict(), "audit_seq": done.seq},
         f"{done.result.name} {'disabled' if disabled else 'enabled'} (record #{done.seq})")
    return EXIT_OK


def _users_disable(args: argparse.Namespace) -> int:
    return _set_disabled(args, True)


def _users_enable(args: argparse.Namespace) -> int:
    return _set_disabled(args, False)


# -- API tokens ----------------------------------------------------------------------------------------


def _token_line(c: Credential) -> str:
    return (f"{c.id:22} {c.user:16} {c.kind:17} {c.status:8} until {c.expires_at}  "
            f"{c.label or ''}").rstrip()


def _tokens_create(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        done = rt.accounts.issue_token(rt.actor(), args.user, label=args.label, days=args.days)
    except _ERRORS as err:
        return fail(args, err)
    issued = done.result
    if not args.json:
        sys.stderr.write(f"facetrail: issued {issued.credential.id} for {issued.credential.user} until "
                         f"{issued.credential.expires_at} (record #{done.seq}); the token is shown only now\n")
    emit(args, {**issued.to_dict(), "audit_seq": done.seq}, issued.token)
    return EXIT_OK


def _tokens_list(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        found = rt.accounts.list_tokens(rt.actor(), user=args.user, include_sessions=args.sessions)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, [c.to_dict() for c in found], "\n".join(_token_line(c) for c in found) or "no tokens")
    return EXIT_OK


def _tokens_revoke(args: argparse.Namespace) -> int:
    try:
        rt = runtime(args)
        done = rt.accounts.revoke_token(rt.actor(), args.id)
    except _ERRORS as err:
        return fail(args, err)
    emit(args, {**done.result.to_dict(), "audit_seq": done.seq}, f"revoked {done.result.id} (record #{done.seq})")
    return EXIT_OK

