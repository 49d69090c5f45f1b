//! The `rabbitmq` check picks what it reads by the broker's reported
//! version: a management API answering as real RabbitMQ 4.0.5 and 3.10.8
//! nodes did (the captured fixtures of warren-health) keeps the server UP,
//! and the same node reporting a version the check does not know is marked
//! DOWN with a reason naming that version and the supported ones.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use common::config::one_backend;
use common::eventually;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use warren_lb::runtime;

/// What the fake management API answers: `(path prefix, status, body)`.
type Routes = Arc<Mutex<Vec<(&'static str, u16, String)>>>;

fn fixture(version: &str, name: &str) -> String {
    let path = format!(
        "{}/../health/tests/fixtures/rabbitmq/{version}/{name}.json",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The healthy answers of one real node of `version`, its
/// `rabbitmq_version` replaced by `reported` when given.
fn node_of(version: &str, reported: Option<&str>) -> Vec<(&'static str, u16, String)> {
    let mut overview: serde_json::Value =
        serde_json::from_str(&fixture(version, "overview")).unwrap();
    if let Some(v) = reported {
        overview["rabbitmq_version"] = v.into();
    }
    vec![
        ("/api/overview", 200, overview.to_string()),
        ("/api/nodes?", 200, fixture(version, "nodes")),
        (
            "/api/health/checks/local-alarms",
            200,
            fixture(version, "health-local-alarms"),
        ),
    ]
}

async fn management(routes: Routes) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let routes = routes.clone();
            tokio::spawn(async move {
                let Some(text) = common::read_request_head(&mut s).await else {
                    return;
                };
                let path = text.split_whitespace().nth(1).unwrap_or("").to_string();
                let (status, body) = routes
                    .lock()
                    .unwrap()
                    .iter()
                    .find(|(prefix, _, _)| path.starts_with(prefix))
                    .map(|(_, status, body)| (*status, body.clone()))
                    .unwrap_or((404, r#"{"error":"Object Not Found"}"#.into()));
                let head = format!(
                    "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = s.write_all(head.as_bytes()).await;
                let _ = s.write_all(body.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn a_known_line_is_up_and_an_unknown_version_is_down_naming_it() {
    let routes: Routes = Arc::new(Mutex::new(node_of("4.0.5", None)));
    let api = management(routes.clone()).await;
    let amqp = common::named("rabbit").await;
    let config = one_backend()
        .check(&format!(
            "type = \"rabbitmq\"\nport = {}\nusername = \"u\"\npassword = \"p\"\ntimeout = \"2s\"",
            api.port()
        ))
        .server("rabbit", amqp.addr)
        .parse();
    let lb = runtime::start(config).await.unwrap();
    let server = lb.backends()[0].servers[0].clone();
    let last_check = || server.last_check().unwrap_or_default();

    eventually("a 4.0.5 node checked and UP", || {
        server.is_up() && last_check().contains("check passed")
    })
    .await;

    *routes.lock().unwrap() = node_of("4.0.5", Some("5.0.0"));
    eventually("the 5.0.0 node marked DOWN", || !server.is_up()).await;
    assert_eq!(
        last_check().split(", check duration").next().unwrap(),
        "rabbitmq: /api/overview reports rabbitmq_version \"5.0.0\", the check knows RabbitMQ 3.x or 4.x"
    );

    *routes.lock().unwrap() = node_of("3.10.8", None);
    eventually("a 3.10.8 node UP again", || server.is_up()).await;
    lb.shutdown().await;
}
