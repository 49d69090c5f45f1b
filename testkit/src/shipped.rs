//! The warren-lb configs the deployments ship (compose, Helm, Ansible),
//! pointed at a test's own servers: what the lifecycle tests of warren-lb
//! and the real drills of warren-drill run with ("test with what you ship").
//!
//! `scripts/lib/render-lb-configs` renders each deployment's config with
//! its defaults, by the deployment's own tooling.  [`Shipped::localize`]
//! then changes only where things are: the listeners' ports (free loopback
//! ports, so concurrent tests never collide), the servers' addresses, the
//! check's credentials (the test cluster's, in a file as shipped) and the
//! admin token's file (a test token, beside the password file).
//! Every other setting ([admin], check type and timings, timeouts,
//! maxconn, timeout_first_byte, roles ...) is the shipped one.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The deployments whose config a lifecycle test runs with.
pub const DEPLOYMENTS: [&str; 3] = ["compose", "helm", "ansible"];

/// The admin token a localized config's `token_file` holds.
pub const TEST_ADMIN_TOKEN: &str = "test-admin-token-0123456789";

/// One deployment's rendered config.
pub struct Shipped {
    pub deployment: &'static str,
    pub table: toml::Table,
}

/// A shipped config pointed at the test's servers, and where it listens.
pub struct Localized {
    pub text: String,
    pub admin: SocketAddr,
    pub frontends: Vec<SocketAddr>,
}

impl Shipped {
    /// Renders every shipped config into `dir` (unless already there) and
    /// loads `deployment`'s.
    pub fn render(deployment: &'static str, dir: &Path) -> Shipped {
        let path: PathBuf = dir.join(format!("{deployment}.toml"));
        if !path.exists() {
            let script =
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/lib/render-lb-configs");
            let out = Command::new(&script)
                .arg(dir)
                .output()
                .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
            assert!(
                out.status.success(),
                "render-lb-configs failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let text =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let table = text
            .parse()
            .unwrap_or_else(|e| panic!("{}: not TOML: {e}", path.display()));
        Shipped { deployment, table }
    }

    /// The shipped config with `servers` (in file order, one each) as the
    /// servers' addresses, `user` and `password_file` as the check's
    /// credentials, every bind on a free loopback port, and a shipped
    /// `admin.token_file` replaced by `lb-admin-token` (written here, beside
    /// `password_file`, holding [`TEST_ADMIN_TOKEN`]).
    pub fn localize(&self, servers: &[SocketAddr], user: &str, password_file: &Path) -> Localized {
        let mut t = self.table.clone();
        let admin = free_loopback_addr();
        let admin_table = t
            .get_mut("admin")
            .and_then(|a| a.as_table_mut())
            .unwrap_or_else(|| panic!("{}: the shipped config has no [admin]", self.deployment));
        admin_table.insert("bind".into(), admin.to_string().into());
        if admin_table.contains_key("token_file") {
            let token_file = password_file.with_file_name("lb-admin-token");
            std::fs::write(&token_file, format!("{TEST_ADMIN_TOKEN}\n"))
                .unwrap_or_else(|e| panic!("{}: {e}", token_file.display()));
            admin_table.insert("token_file".into(), token_file.display().to_string().into());
        }
        let mut frontends = Vec::new();
        for f in tables(&mut t, "frontend", self.deployment) {
            let bind = free_loopback_addr();
            f.insert("bind".into(), bind.to_string().into());
            frontends.push(bind);
        }
        for b in tables(&mut t, "backend", self.deployment) {
            if let Some(check) = b.get_mut("check").and_then(|c| c.as_table_mut()) {
                if check.contains_key("password_file") {
                    check.insert("username".into(), user.into());
                    check.insert(
                        "password_file".into(),
                        password_file.display().to_string().into(),
                    );
                }
            }
            let shipped = tables(b, "server", self.deployment);
            assert_eq!(
                shipped.len(),
                servers.len(),
                "{}: the shipped config has {} servers, the test has {}",
                self.deployment,
                shipped.len(),
                servers.len()
            );
            for (s, addr) in shipped.into_iter().zip(servers) {
                s.insert("address".into(), addr.to_string().into());
            }
        }
        Localized {
            text: toml::to_string(&t).expect("a TOML table serialises"),
            admin,
            frontends,
        }
    }
}

fn tables<'a>(t: &'a mut toml::Table, key: &str, deployment: &str) -> Vec<&'a mut toml::Table> {
    t.get_mut(key)
        .and_then(|v| v.as_array_mut())
        .unwrap_or_else(|| panic!("{deployment}: the shipped config has no [[{key}]]"))
        .iter_mut()
        .map(|v| v.as_table_mut().expect("an array of tables"))
        .collect()
}

/// A loopback address with a port no one listens on right now.
fn free_loopback_addr() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
}
