//! The admin API: readiness follows eligibility, status shows every
//! server, operator commands need the token.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

async fn start(backend: SocketAddr) -> (warren_lb::runtime::Running, String) {
    let text = format!(
        r#"
[admin]
bind = "127.0.0.1:0"
token = "s3cret"
[[frontend]]
name = "amqp"
bind = "127.0.0.1:0"
backend = "rabbitmq"
[[backend]]
name = "rabbitmq"
[backend.check]
inter = "100ms"
rise = 1
fall = 1
[[backend.server]]
name = "rabbit1"
address = "{backend}"
"#
    );
    let lb = warren_lb::runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", lb.admin.unwrap());
    (lb, base)
}

#[tokio::test]
async fn readyz_status_and_commands() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (lb, base) = start(listener.local_addr().unwrap()).await;
    let http = reqwest::Client::new();

    assert_eq!(
        http.get(format!("{base}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let status: Value = http
        .get(format!("{base}/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    // HAProxy's keyword for the default algorithm, as /status always said.
    assert_eq!(status["backends"][0]["balance"], "roundrobin");
    let server = &status["backends"][0]["servers"][0];
    assert_eq!(server["name"], "rabbit1");
    assert_eq!(server["role"], "primary");
    assert_eq!(server["check"], "tcp");

    let drain = format!("{base}/servers/rabbitmq/rabbit1/drain");
    assert_eq!(
        http.post(&drain).send().await.unwrap().status(),
        StatusCode::UNAUTHORIZED
    );
    let r = http
        .post(&drain)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["admin"], "drain");
    assert_eq!(after["eligible"], false);
    let r = http.get(format!("{base}/readyz")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a drained only server leaves the pool empty"
    );
    assert!(r.text().await.unwrap().contains("rabbitmq"));

    let r = http
        .post(format!("{base}/servers/rabbitmq/nope/ready"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = http
        .post(format!("{base}/servers/rabbitmq/rabbit1/reboot"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("expected drain, maint or ready"));

    let r = http
        .post(format!("{base}/servers/rabbitmq/rabbit1/ready"))
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        http.get(format!("{base}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::OK
    );

    drop(listener); // the check fails: the pool empties
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while http
        .get(format!("{base}/readyz"))
        .send()
        .await
        .unwrap()
        .status()
        == StatusCode::OK
    {
        assert!(
            std::time::Instant::now() < deadline,
            "readyz never followed the dead server"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    lb.shutdown().await;
}
