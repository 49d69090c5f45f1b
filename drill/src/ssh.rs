//! How the ssh target calls `ssh`: with explicit options, so that a drill
//! run by automation (Ansible, CI) does not silently depend on the ssh
//! config of whoever runs it.
//!
//! The argv is built by a pure function ([`SshOptions::argv`]). ssh takes
//! the *first* value it sees for an option, so the order is deliberate:
//! `BatchMode=yes` comes first (a password or host-key prompt would hang the
//! drill, so it cannot be overridden), then the operator's identity,
//! known_hosts file and `--ssh-option`s, and only then the drill's default
//! `ConnectTimeout=5`, which an `--ssh-option ConnectTimeout=N` overrides.

use anyhow::{bail, Result};
use std::path::{Path, PathBuf};

/// The operator's ssh options (`--ssh-identity`, `--ssh-known-hosts`, `--ssh-option`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SshOptions {
    /// Passed as `-i FILE`.
    pub identity: Option<PathBuf>,
    /// Passed as `-o UserKnownHostsFile=FILE`.
    pub known_hosts: Option<PathBuf>,
    /// Each passed as `-o OPT`.
    pub options: Vec<String>,
}

fn readable_file(flag: &str, p: &Path, what: &str) -> Result<()> {
    match std::fs::metadata(p) {
        Ok(m) if m.is_file() => {}
        Ok(_) => bail!(
            "{flag} {}: not a regular file (expected {what})",
            p.display()
        ),
        Err(e) => bail!("{flag} {}: {e} (expected {what})", p.display()),
    }
    if let Err(e) = std::fs::File::open(p) {
        bail!(
            "{flag} {}: cannot be read: {e} (expected {what})",
            p.display()
        );
    }
    Ok(())
}

/// `KEY=VALUE` or `KEY VALUE` with an ssh_config keyword as KEY.
fn check_option(o: &str) -> Result<()> {
    let expected = "expected KEY=VALUE with an ssh_config keyword, e.g. StrictHostKeyChecking=yes";
    if o.chars().any(char::is_control) {
        bail!("--ssh-option {o:?}: contains a control character ({expected})");
    }
    let Some((key, value)) = o.split_once(['=', ' ']) else {
        bail!("--ssh-option {o:?}: no value ({expected})");
    };
    if key.is_empty() || !key.chars().all(|c| c.is_ascii_alphanumeric()) {
        bail!("--ssh-option {o:?}: {key:?} is not an ssh_config keyword ({expected})");
    }
    if value.trim().is_empty() {
        bail!("--ssh-option {o:?}: empty value ({expected})");
    }
    if key.eq_ignore_ascii_case("BatchMode") {
        bail!(
            "--ssh-option {o:?}: warren-drill always runs ssh with BatchMode=yes (a prompt would hang the drill)"
        );
    }
    Ok(())
}

impl SshOptions {
    /// Validated options: the files exist and can be read, every option is
    /// `KEY=VALUE`.
    pub fn new(
        identity: Option<PathBuf>,
        known_hosts: Option<PathBuf>,
        options: Vec<String>,
    ) -> Result<SshOptions> {
        if let Some(p) = &identity {
            readable_file(
                "--ssh-identity",
                p,
                "a private key file, passed to ssh as -i FILE",
            )?;
        }
        if let Some(p) = &known_hosts {
            readable_file(
                "--ssh-known-hosts",
                p,
                "a known_hosts file, passed to ssh as -o UserKnownHostsFile=FILE",
            )?;
            if p.to_string_lossy().chars().any(char::is_whitespace) {
                bail!(
                    "--ssh-known-hosts {}: the path contains whitespace, which ssh would split into several files",
                    p.display()
                );
            }
        }
        for o in &options {
            check_option(o)?;
        }
        Ok(SshOptions {
            identity,
            known_hosts,
            options,
        })
    }

    /// Arguments of `ssh` (without the program) that run `command` on `dest`.
    pub fn argv(&self, dest: &str, command: &str) -> Vec<String> {
        let mut a: Vec<String> = vec!["-o".into(), "BatchMode=yes".into()];
        if let Some(p) = &self.identity {
            a.push("-i".into());
            a.push(p.to_string_lossy().into_owned());
        }
        if let Some(p) = &self.known_hosts {
            a.push("-o".into());
            a.push(format!("UserKnownHostsFile={}", p.to_string_lossy()));
        }
        for o in &self.options {
            a.push("-o".into());
            a.push(o.clone());
        }
        a.push("-o".into());
        a.push("ConnectTimeout=5".into());
        a.push(dest.into());
        a.push(command.into());
        a
    }
}

/// An ssh destination (`user@host` or `host`) that cannot be mistaken for
/// an option or split by a shell.
pub fn check_destination(dest: &str) -> Result<()> {
    if dest.is_empty() || dest.starts_with('-') || dest.chars().any(char::is_whitespace) {
        bail!("ssh destination {dest:?}: expected USER@HOST or HOST (no leading '-', no spaces)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argv_without_options_is_batch_mode_and_a_timeout() {
        let o = SshOptions::default();
        assert_eq!(
            o.argv("ops@10.0.0.11", "sudo -n true"),
            [
                "-o",
                "BatchMode=yes",
                "-o",
                "ConnectTimeout=5",
                "ops@10.0.0.11",
                "sudo -n true"
            ]
        );
    }

    #[test]
    fn argv_passes_identity_known_hosts_and_options_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("id_ed25519");
        let kh = dir.path().join("known_hosts");
        std::fs::write(&key, "k").unwrap();
        std::fs::write(&kh, "h").unwrap();
        let o = SshOptions::new(
            Some(key.clone()),
            Some(kh.clone()),
            vec!["StrictHostKeyChecking=yes".into(), "Port 2222".into()],
        )
        .unwrap();
        let a = o.argv("mq1", "true");
        let kh_opt = format!("UserKnownHostsFile={}", kh.display());
        let key_s = key.display().to_string();
        assert_eq!(
            a,
            [
                "-o",
                "BatchMode=yes",
                "-i",
                key_s.as_str(),
                "-o",
                kh_opt.as_str(),
                "-o",
                "StrictHostKeyChecking=yes",
                "-o",
                "Port 2222",
                "-o",
                "ConnectTimeout=5",
                "mq1",
                "true"
            ]
        );
        // the operator's ConnectTimeout comes before the default, so it wins
        let o = SshOptions::new(None, None, vec!["ConnectTimeout=30".into()]).unwrap();
        let a = o.argv("mq1", "true");
        let mine = a.iter().position(|x| x == "ConnectTimeout=30").unwrap();
        let default = a.iter().position(|x| x == "ConnectTimeout=5").unwrap();
        assert!(mine < default, "{a:?}");
        assert_eq!(&a[..2], ["-o", "BatchMode=yes"]);
    }

    #[test]
    fn bad_values_are_refused_with_what_was_expected() {
        let err = |r: Result<SshOptions>| r.unwrap_err().to_string();
        let e = err(SshOptions::new(
            Some("/nonexistent/id".into()),
            None,
            vec![],
        ));
        assert!(
            e.contains("--ssh-identity /nonexistent/id") && e.contains("-i FILE"),
            "{e}"
        );
        let e = err(SshOptions::new(None, Some("/tmp".into()), vec![]));
        assert!(
            e.contains("not a regular file") && e.contains("UserKnownHostsFile"),
            "{e}"
        );
        for bad in [
            "StrictHostKeyChecking",
            "=yes",
            "Strict-Host=yes",
            "Port=",
            "A=b\nc",
        ] {
            let e = err(SshOptions::new(None, None, vec![bad.into()]));
            assert!(
                e.contains("--ssh-option") && e.contains("KEY=VALUE"),
                "{bad}: {e}"
            );
        }
        let e = err(SshOptions::new(None, None, vec!["batchmode=no".into()]));
        assert!(e.contains("BatchMode=yes"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let kh = dir.path().join("known hosts");
        std::fs::write(&kh, "h").unwrap();
        let e = err(SshOptions::new(None, Some(kh), vec![]));
        assert!(e.contains("whitespace"), "{e}");
        assert!(check_destination("-oProxyCommand=x").is_err());
        assert!(check_destination("ops@mq 1").is_err());
        assert!(check_destination("").is_err());
        assert!(check_destination("ops@10.0.0.11").is_ok());
    }
}
