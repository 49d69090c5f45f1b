//! The small configs the in-process tests write again and again: one
//! frontend that sends to one backend, and the servers a test names.
//!
//! The frame (frontend `f` on an ephemeral port, backend `b`) is fixed
//! here; a test states only what it is about (global sections, backend
//! keys, the check, server lines), so those stay visible where they are
//! asserted on.

use std::fmt::{Display, Write};

/// `inter`, `rise` and `fall` of a check that decides within one beat,
/// so tests wait for events, not for health to settle.
const FAST_CHECK: &str = "inter = \"100ms\"\nrise = 1\nfall = 1\n";

/// A config text with one frontend and one backend, built up by the test.
pub struct OneBackend {
    global: String,
    frontend: &'static str,
    backend: &'static str,
    frontend_keys: String,
    backend_keys: String,
    check: Option<String>,
    servers: String,
}

/// Frontend `f` to backend `b`, with no check and no servers yet.
pub fn one_backend() -> OneBackend {
    OneBackend {
        global: String::new(),
        frontend: "f",
        backend: "b",
        frontend_keys: String::new(),
        backend_keys: String::new(),
        check: None,
        servers: String::new(),
    }
}

impl OneBackend {
    /// Sections before the frontend (`[resolvers]`, `[global]`, ...).
    pub fn global(mut self, toml: &str) -> Self {
        self.global.push_str(toml);
        self.global.push('\n');
        self
    }

    /// An admin API on an ephemeral loopback port.
    pub fn admin(self) -> Self {
        self.global("[admin]\nbind = \"127.0.0.1:0\"")
    }

    /// Other frontend and backend names, for tests that assert on them.
    pub fn names(mut self, frontend: &'static str, backend: &'static str) -> Self {
        self.frontend = frontend;
        self.backend = backend;
        self
    }

    /// Keys of the `[[frontend]]` table (`maxconn`, timeouts).
    pub fn frontend_keys(mut self, toml: &str) -> Self {
        self.frontend_keys.push_str(toml);
        self.frontend_keys.push('\n');
        self
    }

    /// Keys of the `[[backend]]` table (`balance = "first"`, timeouts).
    pub fn backend_keys(mut self, toml: &str) -> Self {
        self.backend_keys.push_str(toml);
        self.backend_keys.push('\n');
        self
    }

    /// A fast check (see [`FAST_CHECK`]) with the test's own `keys`
    /// (`type`, `port`, `timeout`, ...); `""` for a plain one.
    pub fn check(mut self, keys: &str) -> Self {
        self.check = Some(format!("{FAST_CHECK}{keys}\n"));
        self
    }

    /// A server with only a name and an address.
    pub fn server(self, name: &str, address: impl Display) -> Self {
        self.server_with(name, address, "")
    }

    /// A server with more `keys` (`role = "backup"`, `check_port = ...`).
    pub fn server_with(mut self, name: &str, address: impl Display, keys: &str) -> Self {
        let _ = writeln!(
            self.servers,
            "[[backend.server]]\nname = \"{name}\"\naddress = \"{address}\"\n{keys}"
        );
        self
    }

    /// The config text.
    pub fn toml(&self) -> String {
        let Self {
            global,
            frontend,
            backend,
            frontend_keys,
            backend_keys,
            check,
            servers,
        } = self;
        let check = check
            .as_ref()
            .map(|keys| format!("[backend.check]\n{keys}"))
            .unwrap_or_default();
        format!(
            "{global}[[frontend]]\nname = \"{frontend}\"\nbind = \"127.0.0.1:0\"\nbackend = \"{backend}\"\n\
             {frontend_keys}[[backend]]\nname = \"{backend}\"\n{backend_keys}{check}{servers}"
        )
    }

    /// The parsed config; a test whose text does not parse fails naming
    /// every problem and showing the text.
    pub fn parse(&self) -> warren_lb::config::Config {
        super::parse(&self.toml())
    }
}

/// The `[backend.check]` table of the real-cluster tests: the `rabbitmq`
/// check, a round every 500 ms (200 ms while changing), rise and fall 2.
pub fn rabbitmq_check(user: &str, password: &str) -> String {
    format!(
        r#"
[backend.check]
type = "rabbitmq"
inter = "500ms"
fastinter = "200ms"
rise = 2
fall = 2
timeout = "1s"
username = "{user}"
password = "{password}"
"#
    )
}
