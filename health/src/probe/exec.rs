//! `exec` check: run a command; it passes when the command exits 0 within
//! the timeout (keepalived's `track_script`).

use std::process::Stdio;
use std::time::Duration;

use tokio::process::Command;

use super::error::ProbeError;

/// Runs `command` (program and arguments, no shell) with no stdin and its
/// output discarded; passes when it exits successfully within `timeout`.
/// A command still running at the deadline is killed: the child dies with
/// the dropped future (`kill_on_drop`), so a hung script cannot pile up.
pub(crate) async fn exec(command: &[String], timeout: Duration) -> Result<(), ProbeError> {
    let Some((program, args)) = command.split_first() else {
        return Err(ProbeError::ExecFailed("no command given".into()));
    };
    let mut cmd = Command::new(program);
    cmd.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true);
    match tokio::time::timeout(timeout, cmd.status()).await {
        Err(_) => Err(ProbeError::ExecTimeout),
        Ok(Err(e)) => Err(ProbeError::ExecFailed(e.to_string())),
        Ok(Ok(status)) if status.success() => Ok(()),
        Ok(Ok(status)) => Err(ProbeError::ExecExited(status)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> Vec<String> {
        vec!["/bin/sh".into(), "-c".into(), script.into()]
    }

    #[tokio::test]
    async fn passes_on_exit_zero_and_names_any_other_exit() {
        let t = Duration::from_secs(5);
        exec(&sh("exit 0"), t).await.unwrap();
        let e = exec(&sh("exit 3"), t).await.unwrap_err();
        assert!(
            matches!(&e, ProbeError::ExecExited(status) if status.code() == Some(3)),
            "{e:?}"
        );
        assert_eq!(e.to_string(), "exec exited with exit status: 3");
    }

    #[tokio::test]
    async fn a_command_past_its_timeout_fails_as_exec_timeout() {
        let e = exec(&sh("sleep 5"), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert_eq!(e, ProbeError::ExecTimeout);
        assert_eq!(e.to_string(), "exec timeout");
        assert!(e.is_timeout());
    }

    #[tokio::test]
    async fn a_command_that_cannot_start_says_why() {
        let t = Duration::from_secs(5);
        let e = exec(&["/nonexistent/warren-check".into()], t)
            .await
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("exec failed: No such file or directory"),
            "{e}"
        );
        let e = exec(&[], t).await.unwrap_err();
        assert_eq!(e.to_string(), "exec failed: no command given");
    }
}
