"""The commands of docs/ansible.md, as the converge suite runs them.

Every line of a ```sh block in docs/ansible.md is a command an operator types. The
suite takes each one from here by its exact text (`DocCommands.take`), so a command
edited in the docs and not in the tests (or the other way round) fails the suite, and
the last test checks that every documented command was taken. Only placeholders for
the operator's own paths and hosts are replaced (`SiteDirs.substitute`).
"""

import pathlib
import re

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs/ansible.md"


def sh_blocks(text):
    """The command lines of every ```sh block (comments and blank lines dropped)."""
    commands = []
    for block in re.findall(r"^```sh\n(.*?)^```", text, re.S | re.M):
        for line in block.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                commands.append(line)
    return commands


# The section that test_converge_trixie.py runs (RabbitMQ 4.0 on trixie hosts); every
# other section's commands are test_converge.py's.
TRIXIE_SECTION = "RabbitMQ 4.0 on trixie hosts"


def sections(text):
    """{"## heading": body} of every second-level section."""
    parts = re.split(r"^## (.+)$", text, flags=re.M)
    return dict(zip(parts[1::2], parts[2::2]))


class DocCommands:
    """The documented commands one suite runs. Any documented command can be taken
    (a suite may need the setup commands of another section), but `not_taken` only
    lists the suite's own: those of section `only`, or of every section but
    `without`."""

    def __init__(self, path=DOCS, only=None, without=None):
        self.path = path
        text = path.read_text()
        self.commands = sh_blocks(text)
        all_sections = sections(text)
        for name in (only, without):
            assert name is None or name in all_sections, f"{path} has no section '## {name}'"
        self.own = [c for heading, body in all_sections.items()
                    if (heading == only if only else heading != without) for c in sh_blocks(body)]
        self.taken = set()

    def take(self, command):
        """The documented command `command`; fails when the docs do not have it."""
        assert command in self.commands, (
            f"{self.path} has no command {command!r} in a ```sh block; it has:\n  " + "\n  ".join(self.commands))
        self.taken.add(command)
        return command

    def not_taken(self):
        return [c for c in self.own if c not in self.taken]


class SiteDirs:
    """Where the docs' placeholders point in a test run: `inventory/prod` is the test's
    inventory, `~/.warren-vault-pass` its vault password file, `<name>` a broker."""

    def __init__(self, inventory, vault_pass):
        self.inventory = pathlib.Path(inventory)
        self.vault_pass = pathlib.Path(vault_pass)

    def substitute(self, command, name=None):
        out = command.replace("inventory/prod", str(self.inventory))
        out = out.replace("~/.warren-vault-pass", str(self.vault_pass))
        if "<name>" in out:
            assert name, f"{command!r} needs a broker for <name>"
            out = out.replace("<name>", name)
        return out
