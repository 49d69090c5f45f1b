//! `/metrics`: scrape after real traffic and a mark-down, check the values.

use std::collections::HashMap;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const PATIENCE: Duration = Duration::from_secs(20);

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
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s1 = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let doomed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let s2 = doomed.local_addr().unwrap();
    let text = format!(
        r#"
[admin]
bind = "127.0.0.1:0"
[[frontend]]
name = "amqp"
bind = "127.0.0.1:0"
backend = "rabbitmq"
[[backend]]
name = "rabbitmq"
balance = "first"
[backend.check]
inter = "100ms"
rise = 1
fall = 1
[[backend.server]]
name = "s1"
address = "{s1}"
[[backend.server]]
name = "s2"
address = "{s2}"
role = "backup"
"#
    );
    let lb = warren_lb::runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", lb.admin.unwrap());

    for _ in 0..3 {
        let mut c = TcpStream::connect(lb.listening[0]).await.unwrap();
        c.write_all(b"hello").await.unwrap();
        let mut buf = [0u8; 5];
        tokio::time::timeout(PATIENCE, c.read_exact(&mut buf))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&buf, b"hello");
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
    assert_eq!(
        get(&v, &format!("warren_lb_server_status{{{l},state=\"UP\"}}")),
        1.0
    );
    assert_eq!(
        get(
            &v,
            &format!("warren_lb_server_status{{{l},state=\"DOWN\"}}")
        ),
        0.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_status{{{l2},state=\"UP\"}}")),
        0.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_sessions_total{{{l}}}")),
        3.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_bytes_in_total{{{l}}}")),
        15.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_bytes_out_total{{{l}}}")),
        15.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_check_up_down_total{{{l2}}}")),
        1.0
    );
    assert!(
        get(
            &v,
            &format!("warren_lb_server_check_failures_total{{{l2}}}")
        ) >= 1.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_check_failures_total{{{l}}}")),
        0.0
    );
    assert_eq!(
        get(&v, &format!("warren_lb_server_check_up_down_total{{{l}}}")),
        0.0
    );
    assert_eq!(
        get(&v, "warren_lb_backend_active_servers{backend=\"rabbitmq\"}"),
        1.0
    );
    assert_eq!(
        get(&v, "warren_lb_backend_backup_servers{backend=\"rabbitmq\"}"),
        0.0
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
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let live = echo.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    // No active check: only the data path can notice the dead server.
    let text = format!(
        r#"
[admin]
bind = "127.0.0.1:0"
[[frontend]]
name = "f"
bind = "127.0.0.1:0"
backend = "b"
[[backend]]
name = "b"
balance = "first"
observe = "none"
[[backend.server]]
name = "dead"
address = "{dead_addr}"
[[backend.server]]
name = "live"
address = "{live}"
"#
    );
    let lb = warren_lb::runtime::start(warren_lb::config::parse(&text).unwrap())
        .await
        .unwrap();
    let base = format!("http://{}", lb.admin.unwrap());
    let mut c = TcpStream::connect(lb.listening[0]).await.unwrap();
    c.write_all(b"x").await.unwrap();
    let mut buf = [0u8; 1];
    tokio::time::timeout(PATIENCE, c.read_exact(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let (_, v) = scrape(&base).await;
    let d = r#"backend="b",server="dead""#;
    assert_eq!(
        get(
            &v,
            &format!("warren_lb_server_connection_errors_total{{{d}}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &v,
            &format!("warren_lb_server_redispatch_warnings_total{{{d}}}")
        ),
        1.0
    );
    assert_eq!(
        get(
            &v,
            r#"warren_lb_server_sessions_total{backend="b",server="live"}"#
        ),
        1.0
    );
    lb.shutdown().await;
}
