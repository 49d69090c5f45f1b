//! SIGHUP: re-read and validate the file; swap only a valid configuration.

use std::path::Path;

use tracing::{error, info};

use super::size_open_files;
use crate::runtime::{Reloaded, Running};

/// Reloads `path` into `running` and logs the outcome (`event = "reload"`).
/// On error the current generation keeps serving; the error is the text
/// the log line carries: every problem of a file that does not validate,
/// or why the swap was refused (a taken port ...).
pub(super) async fn reload_file(running: &Running, path: &Path) -> Result<Reloaded, String> {
    let old = running.generation();
    let config = match crate::config::load(path) {
        Ok(c) => c,
        Err(e) => {
            running.reload_refused();
            let problems: Vec<String> = e.to_string().lines().map(str::to_owned).collect();
            let problems = problems.join("; ");
            error!(
                event = "reload",
                result = "failed",
                generation = old,
                error = %problems,
                "reload failed, generation {old} keeps serving: {problems}"
            );
            return Err(problems);
        }
    };
    size_open_files(&config);
    match running.reload(config).await {
        Ok(r) => {
            info!(
                event = "reload",
                result = "ok",
                generation = r.generation,
                servers_kept = r.servers_kept,
                servers_added = r.servers_added,
                servers_removed = r.servers_removed,
                binds_opened = r.binds_opened,
                binds_closed = r.binds_closed,
                "reload ok: generation {} from {} ({} servers kept, {} added, {} removed; {} listeners opened, {} closed)",
                r.generation,
                path.display(),
                r.servers_kept,
                r.servers_added,
                r.servers_removed,
                r.binds_opened,
                r.binds_closed
            );
            Ok(r)
        }
        Err(e) => {
            let error = format!("{e:#}");
            error!(
                event = "reload",
                result = "failed",
                generation = old,
                error = %error,
                "reload failed, generation {old} keeps serving: {error}"
            );
            Err(error)
        }
    }
}
