//! Notify hooks (keepalived calling convention) and the state file.

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::Duration;

use crate::config::{instance_key, Config, ConfigError, Problem};

/// Every notify script of `config` that [`check_script`] refuses, one problem
/// each (key `instance "VI_1".notify`, no line: the file is right, the script
/// on disk is not), so that check-config lists them all like the file's own.
pub fn check_scripts(file: &Path, config: &Config) -> Result<(), ConfigError> {
    let problems: Vec<Problem> = config
        .instances
        .iter()
        .filter_map(|instance| {
            let message = check_script(instance.notify.as_ref()?).err()?;
            Some(Problem {
                line: None,
                key: format!("{}.notify", instance_key(&instance.name)),
                message,
            })
        })
        .collect();
    if problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError {
            file: file.to_owned(),
            problems,
        })
    }
}

/// Refuse scripts that anyone can rewrite: the script itself or its directory
/// world-writable (directory with sticky bit excepted), or not a regular file.
pub fn check_script(path: &Path) -> Result<(), String> {
    let md =
        std::fs::metadata(path).map_err(|e| format!("notify script {}: {e}", path.display()))?;
    if !md.is_file() {
        return Err(format!(
            "notify script {}: not a regular file",
            path.display()
        ));
    }
    let mode = md.permissions().mode();
    if mode & 0o002 != 0 {
        return Err(format!(
            "notify script {} is world-writable (mode {:o}); refusing to run it",
            path.display(),
            mode & 0o7777
        ));
    }
    if mode & 0o111 == 0 {
        return Err(format!(
            "notify script {} is not executable",
            path.display()
        ));
    }
    if let Some(dir) = path.parent() {
        if let Ok(d) = std::fs::metadata(dir) {
            let m = d.permissions().mode();
            if m & 0o002 != 0 && m & 0o1000 == 0 {
                return Err(format!(
                    "notify script directory {} is world-writable without sticky bit; refusing",
                    dir.display()
                ));
            }
        }
    }
    Ok(())
}

/// Run `script INSTANCE <name> <STATE> <priority>` (keepalived's `notify` convention) with
/// `WARREN_VIP_INSTANCE`, `WARREN_VIP_STATE`, `WARREN_VIP_PREVIOUS`, `WARREN_VIP_PRIORITY`,
/// `WARREN_VIP_VRID` in the environment. Fire-and-forget, killed after 30 s.
pub fn run(script: &Path, name: &str, vrid: u8, state: &str, previous: &str, priority: u8) {
    if let Err(e) = check_script(script) {
        tracing::error!("{e}");
        return;
    }
    let mut cmd = tokio::process::Command::new(script);
    cmd.arg("INSTANCE")
        .arg(name)
        .arg(state)
        .arg(priority.to_string())
        .env("WARREN_VIP_INSTANCE", name)
        .env("WARREN_VIP_STATE", state)
        .env("WARREN_VIP_PREVIOUS", previous)
        .env("WARREN_VIP_PRIORITY", priority.to_string())
        .env("WARREN_VIP_VRID", vrid.to_string())
        .stdin(std::process::Stdio::null())
        .kill_on_drop(true);
    let script = script.to_owned();
    match cmd.spawn() {
        Ok(mut child) => {
            tokio::spawn(async move {
                match tokio::time::timeout(Duration::from_secs(30), child.wait()).await {
                    Ok(Ok(st)) if !st.success() => {
                        tracing::warn!("notify {} exited with {st}", script.display())
                    }
                    Ok(Err(e)) => tracing::warn!("notify {}: {e}", script.display()),
                    Err(_) => {
                        tracing::warn!(
                            "notify {} still running after 30s, killing",
                            script.display()
                        );
                        let _ = child.kill().await;
                    }
                    _ => {}
                }
            });
        }
        Err(e) => tracing::error!("notify {}: cannot run: {e}", script.display()),
    }
}

/// Write `STATE\n` to the state file atomically (temp file + rename).
pub fn write_state(path: &Path, state: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{state}\n"))?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tmpdir(tag: &str) -> std::path::PathBuf {
        let d = std::env::temp_dir().join(format!("wvip-notify-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o755)).unwrap();
        d
    }

    #[test]
    fn refuses_world_writable_and_non_exec() {
        let d = tmpdir("ww");
        let s = d.join("n.sh");
        std::fs::write(&s, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_script(&s).unwrap_err().contains("world-writable"));
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o644)).unwrap();
        assert!(check_script(&s).unwrap_err().contains("not executable"));
        std::fs::set_permissions(&s, std::fs::Permissions::from_mode(0o755)).unwrap();
        assert_eq!(check_script(&s), Ok(()));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o777)).unwrap();
        assert!(check_script(&s).unwrap_err().contains("directory"));
        std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o1777)).unwrap();
        assert_eq!(check_script(&s), Ok(()));
        assert!(check_script(&d.join("missing")).is_err());
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn check_config_lists_every_refused_notify_script_without_a_line() {
        let d = tmpdir("all");
        let missing = d.join("missing.sh");
        let writable = d.join("writable.sh");
        std::fs::write(&writable, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&writable, std::fs::Permissions::from_mode(0o777)).unwrap();
        let instance = |name: &str, vrid: u8, script: &Path| {
            format!(
                "[[instance]]\nname = \"{name}\"\ninterface = \"eth0\"\nvirtual_router_id = {vrid}\n\
                 virtual_ipaddress = [\"10.220.0.{vrid}/24\"]\nnotify = \"{}\"\n",
                script.display()
            )
        };
        let text = instance("VI_1", 51, &missing) + &instance("VI_2", 52, &writable);
        let config = crate::config::parse(&text).unwrap();
        let shown = check_scripts(Path::new("vip.toml"), &config)
            .unwrap_err()
            .to_string();
        let lines: Vec<&str> = shown.lines().collect();
        assert_eq!(lines.len(), 2, "{shown}");
        assert!(
            lines[0].starts_with(&format!(
                "vip.toml: instance \"VI_1\".notify: notify script {}: ",
                missing.display()
            )),
            "{shown}"
        );
        assert_eq!(
            lines[1],
            format!(
                "vip.toml: instance \"VI_2\".notify: notify script {} is world-writable (mode 777); refusing to run it",
                writable.display()
            ),
        );
        let _ = std::fs::remove_dir_all(&d);
    }

    #[test]
    fn state_file_written() {
        let d = tmpdir("st");
        let p = d.join("VI_1.state");
        write_state(&p, "MASTER").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "MASTER\n");
        write_state(&p, "BACKUP").unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "BACKUP\n");
        let _ = std::fs::remove_dir_all(&d);
    }
}
