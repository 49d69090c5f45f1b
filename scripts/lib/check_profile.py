"""The tuned check profile of lb/check-profile.toml and its three copies.

The chart, the Ansible role and the compose lb host are each used on their own,
copied out of this repository, so each keeps the profile's values where its
operators look for them; this module keeps those copies equal to the one file.
`scripts/check-profile` rewrites them from it; each deployment's test suite asks
`drift` about the config that deployment renders (scripts/lib/render-lb-configs),
so a copy edited by hand fails its suite.
"""

import re
import subprocess
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROFILE_FILE = ROOT / "lb/check-profile.toml"
# lb.toml's [backend.check] keys the profile sets, in the order the copies list them.
KEYS = ("inter", "fastinter", "downinter", "rise", "fall", "timeout")
COUNTS = ("rise", "fall")


class ProfileError(Exception):
    """A profile file or a copy that cannot be read or rewritten; the message
    names the file and what was expected."""


def load(path=PROFILE_FILE):
    """{key: value} of the profile file: exactly KEYS, counts as integers >= 1,
    the others as duration strings (warren-lb's own parser judges their syntax
    when a deployment's config is loaded)."""
    try:
        profile = tomllib.loads(Path(path).read_text())
    except (OSError, tomllib.TOMLDecodeError) as e:
        raise ProfileError(f"{path}: {e}") from e
    if set(profile) != set(KEYS):
        raise ProfileError(f"{path}: expected exactly the keys {', '.join(KEYS)}, found {', '.join(profile) or 'none'}")
    for key in KEYS:
        value = profile[key]
        ok = (type(value) is int and value >= 1) if key in COUNTS else (isinstance(value, str) and value != "")
        if not ok:
            want = "an integer >= 1" if key in COUNTS else 'a duration string like "1s"'
            raise ProfileError(f"{path}: {key} = {value!r}: expected {want}")
    return {key: profile[key] for key in KEYS}


@dataclass(frozen=True)
class Copy:
    """Where one deployment writes the profile: the lines of `block` (a regex
    whose group "block" is the profile's section of `path`) that look like
    `line.format(key=..., value=...)`."""

    name: str
    path: Path
    block: str
    line: str
    quote_durations: bool

    def render_line(self, key, value):
        quoted = self.quote_durations and key not in COUNTS
        return self.line.format(key=key, value=f'"{value}"' if quoted else value)

    def key_pattern(self, key):
        prefix = re.escape(self.line.split("{key}")[0])
        between = re.escape(self.line.split("{key}")[1].split("{value}")[0])
        return re.compile(rf"^{prefix}{re.escape(key)}{between}.*$", re.M)


COPIES = (
    # values.yaml's lb.check: the keys indented under "  check:" of the top-level "lb:".
    Copy("helm", ROOT / "helm/warren/values.yaml", r"^lb:\n(?:.*\n)*?  check:\n(?P<block>(?:    .*\n)+)",
         "    {key}: {value}", quote_durations=False),
    Copy("ansible", ROOT / "ansible/roles/warren_lb/defaults/main.yml", r"(?P<block>(?:.*\n)*)",
         "warren_lb_check_{key}: {value}", quote_durations=False),
    # the [backend.check] table of the lb.toml heredoc, up to its first blank line.
    Copy("compose", ROOT / "compose/lbhost/warren-lbhost", r"^\[backend\.check\]\n(?P<block>(?:.+\n)+)",
         "{key} = {value}", quote_durations=True),
)


def rewritten(copy, profile):
    """The text of `copy.path` with the profile's lines in place of its own."""
    text = copy.path.read_text()
    found = re.search(copy.block, text, re.M)
    if not found:
        raise ProfileError(f"{copy.path}: no section for the check profile (expected a match of {copy.block!r})")
    block = found.group("block")
    for key in KEYS:
        block, n = copy.key_pattern(key).subn(copy.render_line(key, profile[key]), block)
        if n != 1:
            raise ProfileError(f"{copy.path}: expected one line {copy.render_line(key, '...')!r} "
                               f"in the check profile's section, found {n}")
    return text[: found.start("block")] + block + text[found.end("block"):]


def write(profile):
    """Rewrite every copy from `profile`; returns the paths that changed."""
    changed = []
    for copy in COPIES:
        text = rewritten(copy, profile)
        if text != copy.path.read_text():
            copy.path.write_text(text)
            changed.append(copy.path)
    return changed


def stale(profile):
    """The copies whose text differs from what `write` would make of it."""
    return [copy for copy in COPIES if rewritten(copy, profile) != copy.path.read_text()]


def drift(deployment):
    """What keeps `deployment` (compose, helm, ansible) from shipping the
    profile file's values, one sentence each; [] when nothing does.

    It renders the deployment's lb.toml with its defaults and compares its
    [backend.check], then checks that the copy reads as scripts/check-profile
    writes it (the same values spelled another way would survive a rewrite)."""
    profile = load()
    with tempfile.TemporaryDirectory(prefix="warren-check-profile-") as out:
        subprocess.run([str(ROOT / "scripts/lib/render-lb-configs"), out, deployment], check=True,
                       stdout=subprocess.DEVNULL)
        check = tomllib.loads((Path(out) / f"{deployment}.toml").read_text())["backend"][0]["check"]
    problems = [f"{deployment}'s lb.toml has {key} = {check.get(key)!r}, {PROFILE_FILE.name} {profile[key]!r}"
                for key in KEYS if check.get(key) != profile[key]]
    problems += [f"{copy.path.relative_to(ROOT)} is not as scripts/check-profile writes it"
                 for copy in stale(profile) if copy.name == deployment]
    return problems
