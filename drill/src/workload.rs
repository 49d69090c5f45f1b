//! The drill workload: N confirming publishers and M acking consumers that
//! reconnect through the endpoint, recording everything into a [`Recorder`].

use crate::accounting::{ConnRecord, Delivery, Event, Foreign, History, Publish};
use crate::event::EventKind;
use crate::mgmt::percent_encode;
use crate::tls::{handshake_failure, DrillTls};
use anyhow::{Context, Result};
use futures_util::stream::{FuturesUnordered, StreamExt};
use lapin::{
    options::{
        BasicAckOptions, BasicConsumeOptions, BasicPublishOptions, BasicQosOptions,
        ConfirmSelectOptions, QueueDeclareOptions, QueueDeleteOptions,
    },
    publisher_confirm::Confirmation,
    types::{AMQPValue, FieldTable, LongString, ShortString},
    BasicProperties, Channel, Connection, ConnectionProperties,
};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum QueueMode {
    /// Classic durable queue (mirrored by the cluster's ha-* policy).
    #[value(alias = "classic")]
    Mirrored,
    /// Quorum queue (x-queue-type=quorum).
    Quorum,
}

#[derive(Debug, Clone)]
pub struct WorkloadConfig {
    /// host:port of the AMQP endpoint (VIP or load balancer).
    pub endpoint: String,
    pub user: String,
    pub password: String,
    pub vhost: String,
    pub queue: String,
    pub mode: QueueMode,
    pub publishers: u32,
    pub consumers: u32,
    /// Total target publish rate in messages/s; None = flat out.
    pub rate: Option<f64>,
    pub max_in_flight: u32,
    pub prefetch: u16,
    /// Unsafe: publishers do not use confirms and count a message as sent once
    /// basic.publish returned (what a fire-and-forget application believes).
    pub no_confirms: bool,
    /// Unsafe: consumers use auto-ack and lose their in-memory backlog when
    /// their connection drops (what an auto-ack application does when it restarts).
    pub auto_ack: bool,
    /// Simulated processing time per message in auto-ack mode.
    pub process_time: Duration,
    /// Reconnect when a confirm has not arrived for this long.
    pub confirm_timeout: Duration,
    pub heartbeat_s: u16,
    /// Identifies this run's messages.
    pub run_id: String,
    /// AMQPS to the endpoint (`--tls`); None = plain AMQP.
    pub tls: Option<DrillTls>,
}

impl WorkloadConfig {
    pub fn uri(&self) -> String {
        let vhost = if self.vhost == "/" {
            "%2f".to_string()
        } else {
            self.vhost.clone()
        };
        format!(
            "amqp://{}:{}@{}/{}?heartbeat={}&connection_timeout=3000",
            percent_encode(&self.user),
            percent_encode(&self.password),
            self.endpoint,
            vhost,
            self.heartbeat_s
        )
    }
    pub fn queue_args(&self) -> FieldTable {
        let mut t = FieldTable::default();
        if self.mode == QueueMode::Quorum {
            t.insert(
                ShortString::from("x-queue-type"),
                AMQPValue::LongString(LongString::from("quorum")),
            );
        }
        t
    }
}

/// Thread-safe store of everything the workload saw, plus live counters.
pub struct Recorder {
    pub start: Instant,
    publishes: Mutex<HashMap<u64, Publish>>,
    deliveries: Mutex<Vec<Delivery>>,
    foreign: Mutex<Vec<Foreign>>,
    events: Mutex<Vec<Event>>,
    conns: Mutex<Vec<ConnRecord>>,
    pub sent: AtomicU64,
    pub confirmed: AtomicU64,
    pub consumed: AtomicU64,
    pub reconnects: AtomicU64,
    /// Auto-ack mode: messages received but not processed yet.
    pub backlog: AtomicU64,
    pub last_error: Mutex<String>,
}

impl Recorder {
    pub fn new() -> Arc<Self> {
        Arc::new(Recorder {
            start: Instant::now(),
            publishes: Mutex::default(),
            deliveries: Mutex::default(),
            foreign: Mutex::default(),
            events: Mutex::default(),
            conns: Mutex::default(),
            sent: AtomicU64::new(0),
            confirmed: AtomicU64::new(0),
            consumed: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
            backlog: AtomicU64::new(0),
            last_error: Mutex::default(),
        })
    }
    pub fn now_us(&self) -> u64 {
        self.start.elapsed().as_micros() as u64
    }
    pub fn event(&self, kind: EventKind, detail: impl Into<String>) {
        let e = Event {
            at_us: self.now_us(),
            kind,
            detail: detail.into(),
        };
        self.events.lock().unwrap().push(e);
    }
    fn sent(&self, id: u64, at: u64) {
        let mut m = self.publishes.lock().unwrap();
        let p = m.entry(id).or_insert(Publish {
            id,
            first_sent_us: at,
            last_sent_us: at,
            confirmed_us: None,
            attempts: 0,
            conn: None,
        });
        p.attempts += 1;
        p.last_sent_us = at;
        self.sent.fetch_add(1, Ordering::Relaxed);
    }
    fn confirmed(&self, id: u64, at: u64, conn: u32) {
        let mut m = self.publishes.lock().unwrap();
        if let Some(p) = m.get_mut(&id) {
            if p.confirmed_us.is_none() {
                p.confirmed_us = Some(at);
                p.conn = Some(conn);
                self.confirmed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
    fn delivered(&self, d: Delivery) {
        self.deliveries.lock().unwrap().push(d);
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }
    fn foreign(&self, what: String) {
        let f = Foreign {
            at_us: self.now_us(),
            what,
        };
        self.foreign.lock().unwrap().push(f);
        self.consumed.fetch_add(1, Ordering::Relaxed);
    }
    /// Record a connection the workload opened; returns its index.
    fn conn_opened(&self, name: String) -> u32 {
        let mut c = self.conns.lock().unwrap();
        c.push(ConnRecord {
            name,
            node: None,
            opened_us: self.now_us(),
            closed_us: None,
        });
        (c.len() - 1) as u32
    }
    fn conn_closed(&self, idx: u32) {
        let now = self.now_us();
        if let Some(c) = self.conns.lock().unwrap().get_mut(idx as usize) {
            c.closed_us.get_or_insert(now);
        }
    }
    /// Names of the workload's connections whose name starts with `prefix`
    /// that are open on the client side.
    pub fn open_conn_names(&self, prefix: &str) -> Vec<String> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.closed_us.is_none() && c.name.starts_with(prefix))
            .map(|c| c.name.clone())
            .collect()
    }
    /// When the workload last gave up a connection named `prefix...` (µs), if ever.
    pub fn last_conn_close_us(&self, prefix: &str) -> Option<u64> {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.name.starts_with(prefix))
            .filter_map(|c| c.closed_us)
            .max()
    }
    /// Open connections whose server-side node is not known yet (a closed
    /// one the management API never listed stays unknown for good).
    pub fn conns_without_node(&self) -> usize {
        self.conns
            .lock()
            .unwrap()
            .iter()
            .filter(|c| c.node.is_none() && c.closed_us.is_none())
            .count()
    }
    /// Fill in server-side nodes from (connection name, node) pairs of the management API.
    pub fn conn_nodes(&self, seen: &[(String, String)]) {
        let mut c = self.conns.lock().unwrap();
        for r in c.iter_mut().filter(|r| r.node.is_none()) {
            if let Some((_, n)) = seen.iter().find(|(name, _)| *name == r.name) {
                r.node = Some(n.clone());
            }
        }
    }
    fn error(&self, e: impl std::fmt::Display) {
        *self.last_error.lock().unwrap() = e.to_string();
    }
    /// Unconfirmed ids (for the settle phase).
    pub fn unconfirmed(&self) -> usize {
        self.publishes
            .lock()
            .unwrap()
            .values()
            .filter(|p| p.confirmed_us.is_none())
            .count()
    }
    pub fn last_delivery_us(&self) -> Option<u64> {
        self.deliveries.lock().unwrap().last().map(|d| d.at_us)
    }
    pub fn history_events(&self) -> Vec<Event> {
        self.events.lock().unwrap().clone()
    }
    pub fn history(&self) -> History {
        let mut publishes: Vec<Publish> =
            self.publishes.lock().unwrap().values().cloned().collect();
        publishes.sort_by_key(|p| p.id);
        History {
            publishes,
            deliveries: self.deliveries.lock().unwrap().clone(),
            foreign: self.foreign.lock().unwrap().clone(),
            events: self.events.lock().unwrap().clone(),
            conns: self.conns.lock().unwrap().clone(),
        }
    }
}

/// Phases signalled to the workload tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Load,
    /// Publishers send no new ids, only retry unconfirmed ones.
    Settle,
    /// Everything stops.
    Stop,
}

/// Prefix of the client-provided names of this run's connections.
pub fn conn_prefix(run_id: &str) -> String {
    format!("warren-drill {run_id} ")
}

pub async fn connect(cfg: &WorkloadConfig) -> Result<Connection> {
    connect_named(cfg, "tool").await
}

/// Connect with the client-provided connection name `warren-drill RUNID TAG`.
pub async fn connect_named(cfg: &WorkloadConfig, tag: &str) -> Result<Connection> {
    let props = ConnectionProperties::default()
        .with_executor(tokio_executor_trait::Tokio::current())
        .with_reactor(tokio_reactor_trait::Tokio)
        .with_connection_name(format!("{}{tag}", conn_prefix(&cfg.run_id)).into());
    let connecting = async {
        match &cfg.tls {
            None => Connection::connect(&cfg.uri(), props).await,
            Some(tls) => {
                let uri = cfg.uri().parse().map_err(|e: String| {
                    lapin::Error::IOError(Arc::new(std::io::Error::other(e)))
                })?;
                let (tls, endpoint) = (tls.clone(), cfg.endpoint.clone());
                #[allow(clippy::result_large_err)] // lapin's connector type
                let handshake = move |_: &_| tls.connect(&endpoint);
                Connection::connector(uri, Box::new(handshake), props).await
            }
        }
    };
    let conn = tokio::time::timeout(Duration::from_secs(5), connecting)
        .await
        .context("AMQP connect timed out after 5s")?;
    conn.map_err(|e| match handshake_failure(&e) {
        Some(why) => anyhow::anyhow!("AMQPS connect to {}: {why}", cfg.endpoint),
        None => e.into(),
    })
}

pub async fn declare(ch: &Channel, cfg: &WorkloadConfig) -> Result<u32> {
    let q = ch
        .queue_declare(
            &cfg.queue,
            QueueDeclareOptions {
                durable: true,
                ..Default::default()
            },
            cfg.queue_args(),
        )
        .await?;
    Ok(q.message_count())
}

/// Message count of the queue (ready messages), via a fresh connection.
pub async fn queue_depth(cfg: &WorkloadConfig) -> Result<u32> {
    let conn = connect(cfg).await?;
    let ch = conn.create_channel().await?;
    let n = declare(&ch, cfg).await?;
    let _ = conn.close(200, "bye").await;
    Ok(n)
}

pub async fn delete_queue(cfg: &WorkloadConfig) -> Result<()> {
    let conn = connect(cfg).await?;
    let ch = conn.create_channel().await?;
    ch.queue_delete(&cfg.queue, QueueDeleteOptions::default())
        .await?;
    let _ = conn.close(200, "bye").await;
    Ok(())
}

fn body(run_id: &str, id: u64) -> Vec<u8> {
    format!("warren-drill {run_id} {id}").into_bytes()
}

/// Parse a body; Some(id) only for a message of this run.
pub fn parse_body(run_id: &str, b: &[u8]) -> Option<u64> {
    let s = std::str::from_utf8(b).ok()?;
    let mut it = s.split(' ');
    if it.next()? != "warren-drill" || it.next()? != run_id {
        return None;
    }
    let id = it.next()?.parse().ok()?;
    if it.next().is_some() {
        return None;
    }
    Some(id)
}

fn backoff(attempt: u32) -> Duration {
    Duration::from_millis((50u64 << attempt.min(5)).min(1000))
}

pub async fn publisher(
    idx: u32,
    cfg: Arc<WorkloadConfig>,
    rec: Arc<Recorder>,
    mut phase: watch::Receiver<Phase>,
) {
    let per_pub_rate = cfg.rate.map(|r| r / cfg.publishers.max(1) as f64);
    let period = per_pub_rate.map(|r| Duration::from_secs_f64(1.0 / r.max(0.001)));
    let mut next_seq: u64 = 0;
    let mut retry: VecDeque<u64> = VecDeque::new();
    let mut next_send = tokio::time::Instant::now();
    let mut attempt = 0u32;
    let props = BasicProperties::default()
        .with_delivery_mode(2)
        .with_content_type("text/plain".into());
    let mut serial = 0u32;
    'outer: loop {
        if *phase.borrow() == Phase::Stop {
            break;
        }
        if *phase.borrow() == Phase::Settle && retry.is_empty() {
            break;
        }
        let tag = format!("p{idx}.{serial}");
        serial += 1;
        let conn = match connect_named(&cfg, &tag).await {
            Ok(c) => c,
            Err(e) => {
                rec.error(format!("publisher {idx}: {e:#}"));
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let setup = async {
            let ch = conn.create_channel().await?;
            if !cfg.no_confirms {
                ch.confirm_select(ConfirmSelectOptions::default()).await?;
            }
            declare(&ch, &cfg).await?;
            anyhow::Ok(ch)
        };
        let ch = match tokio::time::timeout(Duration::from_secs(5), setup).await {
            Ok(Ok(ch)) => ch,
            Ok(Err(e)) => {
                rec.error(format!("publisher {idx} setup: {e:#}"));
                drop_conn(conn);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(_) => {
                rec.error(format!("publisher {idx} setup timed out"));
                drop_conn(conn);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let mark = ConnMark::new(&rec, format!("{}{tag}", conn_prefix(&cfg.run_id)));
        let cid = mark.idx;
        if attempt > 0 || next_seq > 0 {
            rec.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        attempt = 0;
        let mut inflight = FuturesUnordered::new();
        let mut inflight_ids: Vec<u64> = Vec::new();
        let mut last_progress = tokio::time::Instant::now();
        loop {
            let ph = *phase.borrow();
            if ph == Phase::Stop {
                drop_conn(conn);
                break 'outer;
            }
            if ph == Phase::Settle && retry.is_empty() && inflight.is_empty() {
                drop_conn(conn);
                break 'outer;
            }
            let can_send = inflight.len() < cfg.max_in_flight.max(1) as usize
                && (!retry.is_empty() || ph == Phase::Load);
            let wait_until = if !retry.is_empty() {
                tokio::time::Instant::now()
            } else {
                next_send
            };
            tokio::select! {
                _ = tokio::time::sleep_until(wait_until), if can_send => {
                    let id = match retry.pop_front() {
                        Some(id) => id,
                        None => {
                            let id = ((idx as u64) << 40) | next_seq;
                            next_seq += 1;
                            if let Some(p) = period {
                                next_send += p;
                                let now = tokio::time::Instant::now();
                                if next_send + Duration::from_secs(1) < now {
                                    next_send = now;
                                }
                            }
                            id
                        }
                    };
                    let at = rec.now_us();
                    rec.sent(id, at);
                    let res = ch.basic_publish(
                        "",
                        &cfg.queue,
                        BasicPublishOptions { mandatory: true, ..Default::default() },
                        &body(&cfg.run_id, id),
                        props.clone(),
                    ).await;
                    match res {
                        Ok(confirm) => {
                            if cfg.no_confirms {
                                rec.confirmed(id, rec.now_us(), cid);
                            } else {
                                if inflight.is_empty() {
                                    last_progress = tokio::time::Instant::now();
                                }
                                inflight_ids.push(id);
                                inflight.push(async move { (id, confirm.await) });
                            }
                        }
                        Err(e) => {
                            rec.error(format!("publisher {idx} publish: {e}"));
                            retry.push_front(id);
                            retry.extend(inflight_ids.drain(..));
                            drop_conn(conn);
                            continue 'outer;
                        }
                    }
                }
                Some((id, res)) = inflight.next(), if !inflight.is_empty() => {
                    last_progress = tokio::time::Instant::now();
                    inflight_ids.retain(|x| *x != id);
                    match res {
                        Ok(Confirmation::Ack(None)) | Ok(Confirmation::NotRequested) => {
                            rec.confirmed(id, rec.now_us(), cid);
                        }
                        Ok(Confirmation::Ack(Some(_))) => {
                            // returned (unroutable: the queue is not there right now)
                            retry.push_back(id);
                        }
                        Ok(Confirmation::Nack(_)) => retry.push_back(id),
                        Err(e) => {
                            rec.error(format!("publisher {idx} confirm: {e}"));
                            retry.push_back(id);
                            retry.extend(inflight_ids.drain(..));
                            drop_conn(conn);
                            continue 'outer;
                        }
                    }
                }
                _ = tokio::time::sleep_until(last_progress + cfg.confirm_timeout), if !inflight.is_empty() => {
                    rec.error(format!("publisher {idx}: no confirm for {:?}, reconnecting", cfg.confirm_timeout));
                    retry.extend(inflight_ids.drain(..));
                    drop_conn(conn);
                    continue 'outer;
                }
                _ = phase.changed() => {}
            }
        }
    }
}

/// Marks a workload connection closed (client side) when dropped.
struct ConnMark {
    rec: Arc<Recorder>,
    idx: u32,
}

impl ConnMark {
    fn new(rec: &Arc<Recorder>, name: String) -> ConnMark {
        ConnMark {
            rec: rec.clone(),
            idx: rec.conn_opened(name),
        }
    }
}

impl Drop for ConnMark {
    fn drop(&mut self) {
        self.rec.conn_closed(self.idx);
    }
}

/// Close a connection without waiting on a possibly dead peer.
fn drop_conn(conn: Connection) {
    tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(1), conn.close(200, "drill")).await;
    });
}

pub async fn consumer(
    idx: u32,
    cfg: Arc<WorkloadConfig>,
    rec: Arc<Recorder>,
    mut phase: watch::Receiver<Phase>,
) {
    let mut attempt = 0u32;
    let mut first = true;
    let mut serial = 0u32;
    loop {
        if *phase.borrow() == Phase::Stop {
            break;
        }
        let tag = format!("c{idx}.{serial}");
        serial += 1;
        let conn = match connect_named(&cfg, &tag).await {
            Ok(c) => c,
            Err(e) => {
                rec.error(format!("consumer {idx}: {e:#}"));
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let setup = async {
            let ch = conn.create_channel().await?;
            if !cfg.auto_ack {
                ch.basic_qos(cfg.prefetch, BasicQosOptions::default())
                    .await?;
            }
            declare(&ch, &cfg).await?;
            let c = ch
                .basic_consume(
                    &cfg.queue,
                    &format!("drill-c{idx}-{}", rec.now_us()),
                    BasicConsumeOptions {
                        no_ack: cfg.auto_ack,
                        ..Default::default()
                    },
                    FieldTable::default(),
                )
                .await?;
            anyhow::Ok((ch, c))
        };
        let (_ch, mut stream) = match tokio::time::timeout(Duration::from_secs(5), setup).await {
            Ok(Ok(x)) => x,
            Ok(Err(e)) => {
                rec.error(format!("consumer {idx} setup: {e:#}"));
                drop_conn(conn);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            Err(_) => {
                rec.error(format!("consumer {idx} setup timed out"));
                drop_conn(conn);
                tokio::time::sleep(backoff(attempt)).await;
                attempt += 1;
                continue;
            }
        };
        let _mark = ConnMark::new(&rec, format!("{}{tag}", conn_prefix(&cfg.run_id)));
        if !first {
            rec.reconnects.fetch_add(1, Ordering::Relaxed);
        }
        first = false;
        attempt = 0;
        // auto-ack mode: an in-memory backlog that a restarting app loses
        let mut backlog: VecDeque<(u64, bool)> = VecDeque::new();
        let mut next_done = tokio::time::Instant::now();
        loop {
            tokio::select! {
                d = stream.next() => {
                    let Some(Ok(d)) = d else {
                        if let Some(Err(e)) = d {
                            rec.error(format!("consumer {idx}: {e}"));
                        }
                        break;
                    };
                    match parse_body(&cfg.run_id, &d.data) {
                        Some(id) => {
                            if cfg.auto_ack {
                                if backlog.is_empty() {
                                    next_done = tokio::time::Instant::now() + cfg.process_time;
                                }
                                backlog.push_back((id, d.redelivered));
                                rec.backlog.fetch_add(1, Ordering::Relaxed);
                                continue;
                            }
                            rec.delivered(Delivery { id, at_us: rec.now_us(), redelivered: d.redelivered });
                        }
                        None => rec.foreign(String::from_utf8_lossy(&d.data).chars().take(80).collect()),
                    }
                    if !cfg.auto_ack && d.acker.ack(BasicAckOptions::default()).await.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep_until(next_done), if !backlog.is_empty() => {
                    let (id, redelivered) = backlog.pop_front().unwrap();
                    rec.backlog.fetch_sub(1, Ordering::Relaxed);
                    rec.delivered(Delivery { id, at_us: rec.now_us(), redelivered });
                    next_done = tokio::time::Instant::now() + cfg.process_time;
                }
                r = phase.changed() => {
                    if r.is_err() || *phase.borrow() == Phase::Stop {
                        drop_conn(conn);
                        return;
                    }
                }
            }
        }
        if !backlog.is_empty() {
            rec.backlog
                .fetch_sub(backlog.len() as u64, Ordering::Relaxed);
            rec.event(
                EventKind::Note,
                format!(
                    "consumer {idx} lost its connection with {} auto-acked message(s) unprocessed",
                    backlog.len()
                ),
            );
        }
        drop_conn(conn);
        tokio::time::sleep(backoff(0)).await;
    }
}

/// Handles of a running workload.
pub struct Workload {
    pub phase: watch::Sender<Phase>,
    pub publishers: Vec<tokio::task::JoinHandle<()>>,
    pub consumers: Vec<tokio::task::JoinHandle<()>>,
}

impl Workload {
    pub fn start(cfg: Arc<WorkloadConfig>, rec: Arc<Recorder>) -> Workload {
        let (tx, rx) = watch::channel(Phase::Load);
        let consumers = (0..cfg.consumers)
            .map(|i| tokio::spawn(consumer(i, cfg.clone(), rec.clone(), rx.clone())))
            .collect();
        let publishers = (0..cfg.publishers)
            .map(|i| tokio::spawn(publisher(i, cfg.clone(), rec.clone(), rx.clone())))
            .collect();
        Workload {
            phase: tx,
            publishers,
            consumers,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_roundtrip() {
        let b = body("r1", 42);
        assert_eq!(parse_body("r1", &b), Some(42));
        assert_eq!(parse_body("r2", &b), None);
        assert_eq!(parse_body("r1", b"warren-drill r1 x"), None);
        assert_eq!(parse_body("r1", b"warren-drill r1 1 2"), None);
        assert_eq!(parse_body("r1", &[0xff, 0xfe]), None);
    }

    #[test]
    fn uri_escapes_credentials_and_vhost() {
        let cfg = WorkloadConfig {
            endpoint: "127.0.0.1:5672".into(),
            user: "ad min".into(),
            password: "p@ss/w".into(),
            vhost: "/".into(),
            queue: "q".into(),
            mode: QueueMode::Quorum,
            publishers: 1,
            consumers: 1,
            rate: None,
            max_in_flight: 10,
            prefetch: 10,
            no_confirms: false,
            auto_ack: false,
            process_time: Duration::ZERO,
            confirm_timeout: Duration::from_secs(5),
            heartbeat_s: 5,
            run_id: "r".into(),
            tls: None,
        };
        assert_eq!(
            cfg.uri(),
            "amqp://ad%20min:p%40ss%2Fw@127.0.0.1:5672/%2f?heartbeat=5&connection_timeout=3000"
        );
        assert!(cfg.queue_args().inner().contains_key("x-queue-type"));
    }

    #[test]
    fn backoff_is_capped() {
        assert_eq!(backoff(0), Duration::from_millis(50));
        assert_eq!(backoff(10), Duration::from_millis(1000));
    }
}
