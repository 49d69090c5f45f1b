//! `/metrics`: scrape after real traffic and a mark-down, check the values.

use std::collections::HashMap;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};

mod common;
use common::config::one_backend;
use common::PATIENCE;

async fn scrape(base: &str) -> (String, HashMap<String, f64>) {
    let resp = reqwest::get(format!("{base}/metrics")).await.unwrap();
    assert_eq!(resp.status(), reqwest::StatusCode::OK);
    let ct = resp.headers()["content-type"].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/plain; version=0.0.4"), "{ct}");
    let text = resp.text().await.unwrap();
    let mut values = HashMap::new();
    for line in text.lines().filter(|l| !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').expect("series value");
        values.insert(series.to_owned(), value.parse::<f64>().expect("a number"));
    }
    (text, values)
}

fn get(values: &HashMap<String, f64>, series: &str) -> f64 {
    *values
        .get(series)
        .unwrap_or_else(|| panic!("no series {series} in {values:#?}"))
}

#[tokio::test]
async fn scrape_after_traffic_and_a_mark_down() {
    // s1 echoes; s2 accepts checks until we close it.
    let s1 = common::echo().await;
    let doomed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2 = doomed.local_addr().unwrap();
    let config = one_backend()
        .admin()
        .names("amqp", "rabbitmq")
        .backend_keys("balance = \"first\"")
        .check("")
        .server("s1", s1)
        .server_with("s2", s2, "role = \"backup\"")
        .parse();
    let (lb, _) = common::start(config).await;
    let base = common::admin_url(&lb);

    for _ in 0..3 {
        let mut c = TcpStream::connect(lb.listening[0]).await.unwrap();
        common::echoes(&mut c, b"hello").await;
    }
    drop(doomed); // s2's checks now fail: marked down
    let l = r#"backend="rabbitmq",server="s1""#;
    let l2 = r#"backend="rabbitmq",server="s2""#;
    let deadline = std::time::Instant::now() + PATIENCE;
    let (text, v) = loop {
        let (text, v) = scrape(&base).await;
        let settled = v.get(&format!("warren_lb_server_current_sessions{{{l}}}")) == Some(&0.0)
            && v.get(&format!("warren_lb_server_status{{{l2},state=\"DOWN\"}}")) == Some(&1.0);
        if settled {
            break (text, v);
        }
        assert!(
            std::time::Instant::now() < deadline,
            "metrics never settled:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(text.contains("# TYPE warren_lb_server_sessions_total counter"));
    let exact = [
        (format!("warren_lb_server_status{{{l},state=\"UP\"}}"), 1.0),
        (
            format!("warren_lb_server_status{{{l},state=\"DOWN\"}}"),
            0.0,
        ),
        (format!("warren_lb_server_status{{{l2},state=\"UP\"}}"), 0.0),
        (format!("warren_lb_server_sessions_total{{{l}}}"), 3.0),
        (format!("warren_lb_server_bytes_in_total{{{l}}}"), 15.0),
        (format!("warren_lb_server_bytes_out_total{{{l}}}"), 15.0),
        (format!("warren_lb_server_check_up_down_total{{{l2}}}"), 1.0),
        (format!("warren_lb_server_check_failures_total{{{l}}}"), 0.0),
        (format!("warren_lb_server_check_up_down_total{{{l}}}"), 0.0),
        (
            "warren_lb_backend_active_servers{backend=\"rabbitmq\"}".to_owned(),
            1.0,
        ),
        (
            "warren_lb_backend_backup_servers{backend=\"rabbitmq\"}".to_owned(),
            0.0,
        ),
    ];
    for (series, want) in &exact {
        assert_eq!(get(&v, series), *want, "{series}");
    }
    assert!(
        get(
            &v,
            &format!("warren_lb_server_check_failures_total{{{l2}}}")
        ) >= 1.0
    );
    assert_eq!(get(&v, "warren_lb_config_generation"), 1.0);
    assert!(get(&v, "warren_lb_process_uptime_seconds") > 0.0);
    assert!(get(&v, "warren_lb_process_start_time_seconds") > 1.7e9);
    assert!(
        get(
            &v,
            &format!("warren_lb_server_last_status_change_seconds{{{l2}}}")
        ) >= 0.0
    );

    // An operator drain shows as the DRAIN state.
    let r = reqwest::Client::new()
        .post(format!("{base}/servers/rabbitmq/s1/drain"))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let (_, v) = scrape(&base).await;
    assert_eq!(
        get(
            &v,
            &format!("warren_lb_server_status{{{l},state=\"DRAIN\"}}")
        ),
        1.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_status{{{l},state=\"UP\"}}")),
        0.0
    );
    assert_eq!(
        get(&v, "warren_lb_backend_active_servers{backend=\"rabbitmq\"}"),
        0.0
    );
    lb.shutdown().await;
}

#[tokio::test]
async fn connect_errors_and_redispatches_are_counted() {
    let dead = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead_addr = dead.local_addr().unwrap();
    drop(dead);
    let live = common::echo().await;
    // No active check: only the data path can notice the dead server.
    let config = one_backend()
        .admin()
        .backend_keys("balance = \"first\"\nobserve = \"none\"")
        .server("dead", dead_addr)
        .server("live", live)
        .parse();
    let (lb, _) = common::start(config).await;
    let base = common::admin_url(&lb);
    let mut c = TcpStream::connect(lb.listening[0]).await.unwrap();
    common::echoes(&mut c, b"x").await;
    let (_, v) = scrape(&base).await;
    let d = r#"backend="b",server="dead""#;
    let exact = [
        (
            format!("warren_lb_server_connection_errors_total{{{d}}}"),
            1.0,
        ),
        (
            format!("warren_lb_server_redispatch_warnings_total{{{d}}}"),
            1.0,
        ),
        (
            r#"warren_lb_server_sessions_total{backend="b",server="live"}"#.to_owned(),
            1.0,
        ),
    ];
    for (series, want) in &exact {
        assert_eq!(get(&v, series), *want, "{series}");
    }
    lb.shutdown().await;
}
