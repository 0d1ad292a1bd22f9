"""`configgen new`, `configgen init` and `configgen render`: the project folder and its files."""

from __future__ import annotations

import argparse
from pathlib import Path

from configgen import command, htpasswd, render, scaffold, servicesecrets, stack, targets, tls


def cmd_new(args: argparse.Namespace) -> None:
    folder = Path(args.folder)
    written = scaffold.create(folder)
    made = stack.read(folder / stack.DEFAULT_STACK)
    written += render.write(render.render(made, targets.outputs(made)), folder)
    print(f"made a stack project in {command.shown(folder)} ({len(written)} files); next:")
    print(f"  cd {command.shown(folder)} && configgen init && configgen htpasswd user add NAME")
    print("  then `docker compose -f compose/production.yml up -d --build` or `configgen up`")


def cmd_init(args: argparse.Namespace) -> None:
    found = stack.find(args.stack)
    report = servicesecrets.init(found)
    # The users folder too: compose mounts it, and Docker would make a missing one root's.
    for folder in htpasswd.prepare_folder(found.htpasswd.parent):
        report.append(f"created {found.relative(folder)}/ (mode {htpasswd.FOLDER_MODE:04o})")
    if created := tls.ensure_self_signed(found):
        report.append(created)
    for line in report:
        print(line)
    if not report:
        print("nothing to do: every secret already exists")
    if not found.htpasswd.exists():
        print("next: add the first user with `configgen htpasswd user add NAME`")


def cmd_render(args: argparse.Namespace) -> None:
    found = stack.find(args.stack)
    tls.check_own(found)
    out = Path(args.out) if args.out else found.root
    rendered = render.render(found, targets.outputs(found))
    where = command.shown(out)
    if args.check:
        problems = render.drift(rendered, out)
        command.report(
            problems,
            f"{len(problems)} of {len(rendered)} rendered files in {where} differ from "
            "the stack file; run `configgen render` and commit the result",
        )
        print(f"all {len(rendered)} rendered files in {where} match the stack file")
        return
    changed = render.write(rendered, out)
    for path in changed:
        print(f"wrote {command.shown(out / path)}")
    if not changed:
        print(f"all {len(rendered)} rendered files in {where} were already up to date")
    command.warn_tls_off(found)


def register(commands: command.Subcommands) -> None:
    new = command.subcommand(
        commands,
        "new",
        "make a stack project in a new or empty folder",
        cmd_new,
        "Make a deployment project of your own in FOLDER (new, or empty): stack/stack.yaml "
        "with every setting and its comment, a .gitignore keeping secrets/ and data/ out, a "
        "README saying what to run next, and every file `configgen render` writes. Refuses "
        "a folder that is not empty, writing nothing.",
    )
    new.add_argument("folder", metavar="FOLDER", help="where to make the project")
    command.subcommand(
        commands,
        "init",
        "create the service secrets (idempotent)",
        cmd_init,
        "Create the secrets folder (0700) with generated service secrets (database root and "
        "user passwords, object-store keys), each in a 0600 file. "
        "Existing secrets are never overwritten. Set NAME or NAME_FILE in the environment "
        "(e.g. MYSQL_PASSWORD_FILE) to supply a value instead of generating it.",
    )
    rendering = command.subcommand(
        commands,
        "render",
        "render nginx/ and the other runner files from the stack file",
        cmd_render,
        "Render the files the runners use from the stack file. The output is deterministic; "
        "with --check nothing is written and the exit code is 1 if any file differs from a "
        "fresh render (or a program lost its executable bits).",
    )
    rendering.add_argument(
        "--out", metavar="DIR", help="write under DIR (default: the stack's project folder)"
    )
    rendering.add_argument("--check", action="store_true", help="compare instead of writing")
