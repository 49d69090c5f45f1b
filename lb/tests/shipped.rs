//! The shipped-config helper changes only where things are: the configs
//! the deployments ship, pointed at test servers, still validate and keep
//! every other setting (what the real lifecycle tests rely on).

mod common;
use warren_testkit::shipped::{Shipped, DEPLOYMENTS, TEST_ADMIN_TOKEN};

/// The table without the keys [`Shipped::localize`] may change.
fn without_locations(mut t: toml::Table) -> toml::Table {
    if let Some(a) = t.get_mut("admin").and_then(|a| a.as_table_mut()) {
        a.remove("bind");
        a.remove("token_file");
    }
    for f in t.get_mut("frontend").unwrap().as_array_mut().unwrap() {
        f.as_table_mut().unwrap().remove("bind");
    }
    for b in t.get_mut("backend").unwrap().as_array_mut().unwrap() {
        let b = b.as_table_mut().unwrap();
        if let Some(c) = b.get_mut("check").and_then(|c| c.as_table_mut()) {
            c.remove("username");
            c.remove("password_file");
        }
        for s in b.get_mut("server").unwrap().as_array_mut().unwrap() {
            s.as_table_mut().unwrap().remove("address");
        }
    }
    t
}

#[test]
fn shipped_configs_are_localized_without_changing_anything_else() {
    let dir = tempfile::tempdir().unwrap();
    let password_file = dir.path().join("password");
    std::fs::write(&password_file, "secret\n").unwrap();
    let servers: Vec<std::net::SocketAddr> =
        ["127.0.0.1:15001", "127.0.0.1:15002", "127.0.0.1:15003"]
            .iter()
            .map(|s| s.parse().unwrap())
            .collect();
    for deployment in DEPLOYMENTS {
        let shipped = Shipped::render(deployment, dir.path());
        let local = shipped.localize(&servers, "tester", &password_file);
        let config = warren_lb::config::parse(&local.text)
            .unwrap_or_else(|p| panic!("{deployment}: the localized config is refused: {p:#?}"));
        let admin = config.admin.as_ref().expect("[admin] kept");
        assert_eq!(admin.bind, local.admin, "{deployment}");
        assert!(admin.bind.ip().is_loopback(), "{deployment}");
        assert_eq!(
            config.frontends.iter().map(|f| f.bind).collect::<Vec<_>>(),
            local.frontends,
            "{deployment}"
        );
        let addresses: Vec<String> = config.backends[0]
            .servers
            .iter()
            .map(|s| s.address.to_string())
            .collect();
        assert_eq!(
            addresses,
            servers.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
            "{deployment}"
        );
        let shipped_admin = &shipped.table["admin"];
        let shipped_bind: std::net::SocketAddr =
            shipped_admin["bind"].as_str().unwrap().parse().unwrap();
        if !shipped_bind.ip().is_loopback() {
            assert!(
                admin.token.is_some(),
                "{deployment}: the admin API is shipped on {shipped_bind}, beyond loopback, without a token"
            );
        }
        if shipped_admin.get("token_file").is_some() {
            assert_eq!(
                admin.token.as_deref(),
                Some(TEST_ADMIN_TOKEN),
                "{deployment}"
            );
        }
        let localized: toml::Table = local.text.parse().unwrap();
        assert_eq!(
            without_locations(localized),
            without_locations(shipped.table.clone()),
            "{deployment}: a setting other than a location changed"
        );
    }
}
