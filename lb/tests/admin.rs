//! The admin API: readiness follows eligibility, status shows every
//! server, operator commands need the token.

use std::net::SocketAddr;

use reqwest::StatusCode;
use serde_json::Value;
use tokio::net::TcpListener;

mod common;
use common::config::one_backend;

async fn start(backend: SocketAddr) -> (warren_lb::runtime::Running, String) {
    let config = one_backend()
        .global("[admin]\nbind = \"127.0.0.1:0\"\ntoken = \"s3cret\"")
        .names("amqp", "rabbitmq")
        .check("")
        .server("rabbit1", backend)
        .parse();
    let (lb, _) = common::start(config).await;
    let base = common::admin_url(&lb);
    (lb, base)
}

async fn get_status(http: &reqwest::Client, url: &str) -> StatusCode {
    http.get(url).send().await.unwrap().status()
}

/// An operator command, with the token.
async fn command(http: &reqwest::Client, url: &str) -> reqwest::Response {
    http.post(url).bearer_auth("s3cret").send().await.unwrap()
}

#[tokio::test]
async fn readyz_status_and_commands() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (lb, base) = start(listener.local_addr().unwrap()).await;
    let http = reqwest::Client::new();
    let readyz = format!("{base}/readyz");

    assert_eq!(
        get_status(&http, &format!("{base}/healthz")).await,
        StatusCode::OK
    );
    assert_eq!(get_status(&http, &readyz).await, StatusCode::OK);
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
    let r = command(&http, &drain).await;
    assert_eq!(r.status(), StatusCode::OK);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["admin"], "drain");
    assert_eq!(after["eligible"], false);
    let r = http.get(&readyz).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "a drained only server leaves the pool empty"
    );
    assert!(r.text().await.unwrap().contains("rabbitmq"));

    let r = command(&http, &format!("{base}/servers/rabbitmq/nope/ready")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    let r = command(&http, &format!("{base}/servers/rabbitmq/rabbit1/reboot")).await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert!(r
        .text()
        .await
        .unwrap()
        .contains("expected drain, maint or ready"));

    let r = command(&http, &format!("{base}/servers/rabbitmq/rabbit1/ready")).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(get_status(&http, &readyz).await, StatusCode::OK);

    drop(listener); // the check fails: the pool empties
    common::eventually_async("readyz to follow the dead server", || async {
        get_status(&http, &readyz).await != StatusCode::OK
    })
    .await;
    lb.shutdown().await;
}
