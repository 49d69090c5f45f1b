//! `http` check: one HTTP(S) GET with optional basic auth, expecting a status
//! and optionally a substring of the body (HAProxy `option httpchk` +
//! `http-check expect status` / `string`).

use std::error::Error as _;
use std::time::Duration;

use tokio::time::{timeout_at, Instant};

use rustls::pki_types::ServerName;

use super::error::{io_reason, l4_error, ProbeError};
use super::tls::{rustls_error, CheckTls};

/// Largest body read; more is cut off (the expectation sees the first part).
const MAX_BODY: usize = 4 * 1024 * 1024;

/// An HTTP check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HttpCheck {
    /// Full URL, e.g. `http://10.210.1.11:15672/api/health/checks/alarms`.
    pub url: String,
    /// Basic auth user (no auth when `None`).
    pub username: Option<String>,
    pub password: Option<String>,
    /// Required status code (e.g. 200).
    pub expect_status: u16,
    /// When set, the body must contain this string.
    pub expect_body: Option<String>,
    /// The TLS of an `https://` URL; `None`: reqwest's own defaults.
    pub tls: Option<CheckTls>,
}

/// Passes when the GET answers `expect_status` (and the body contains
/// `expect_body`, if set) within `timeout`.
pub async fn http(check: &HttpCheck, timeout: Duration) -> Result<(), ProbeError> {
    let deadline = Instant::now() + timeout;
    let (status, body) = get(
        &check.url,
        check.username.as_deref(),
        check.password.as_deref(),
        check.tls.as_ref(),
        deadline,
    )
    .await?;
    if status != check.expect_status {
        return Err(ProbeError::L7Status(status));
    }
    if let Some(want) = &check.expect_body {
        if !String::from_utf8_lossy(&body).contains(want.as_str()) {
            return Err(ProbeError::L7Rsp(format!("body does not contain {want:?}")));
        }
    }
    Ok(())
}

/// GET `url` with a fresh connection (no pooling: each check connects, as
/// HAProxy does), all within `deadline`. Returns status and (capped) body.
/// With `tls`, an `https://` URL uses its client configuration (the one
/// the `amqp` probe handshakes with).
pub(crate) async fn get(
    url: &str,
    username: Option<&str>,
    password: Option<&str>,
    tls: Option<&CheckTls>,
    deadline: Instant,
) -> Result<(u16, Vec<u8>), ProbeError> {
    let timeout = deadline.saturating_duration_since(Instant::now());
    let mut builder = reqwest::Client::builder()
        .connect_timeout(timeout)
        .timeout(timeout)
        .pool_max_idle_per_host(0)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent("warren-health-check");
    let mut url = reqwest::Url::parse(url)
        .map_err(|e| ProbeError::L7Rsp(format!("invalid check request: {url:?}: {e}")))?;
    if let Some(tls) = tls {
        builder = builder.use_preconfigured_tls(tls.client_config());
        if let Some(name) = sni_host(&mut url, tls) {
            builder = builder.resolve(&name.0, name.1);
        }
    }
    let client = builder
        .build()
        .map_err(|e| ProbeError::L7Rsp(format!("cannot build HTTP client: {e}")))?;
    let mut req = client.get(url);
    if let Some(user) = username {
        req = req.basic_auth(user, password);
    }
    let fut = async {
        let mut resp = req.send().await.map_err(classify)?;
        let status = resp.status().as_u16();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify)? {
            let room = MAX_BODY - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() >= MAX_BODY {
                break;
            }
        }
        Ok((status, body))
    };
    match timeout_at(deadline, fut).await {
        Err(_) => Err(ProbeError::L7Timeout),
        Ok(r) => r,
    }
}

/// reqwest sends and checks the URL's host: for an SNI name other than
/// the URL's IP, the URL gets the name as its host and the returned name
/// resolves to the IP the URL had (the check still goes where it was
/// told).  `None`: the URL stays as it is.
fn sni_host(url: &mut reqwest::Url, tls: &CheckTls) -> Option<(String, std::net::SocketAddr)> {
    let Some(ServerName::DnsName(name)) = tls.sni() else {
        return None;
    };
    let host = url.host_str()?;
    let ip: std::net::IpAddr = host.trim_matches(['[', ']']).parse().ok()?;
    let address = std::net::SocketAddr::new(ip, url.port_or_known_default()?);
    url.set_host(Some(name.as_ref())).ok()?;
    Some((name.as_ref().to_owned(), address))
}

/// The rustls error of a failed handshake: hyper wraps it in an io::Error
/// in an io::Error, and an io::Error's `source` skips what it wraps, so
/// the wrapped errors are opened here.
fn rustls_inside<'e>(e: &'e (dyn std::error::Error + 'static)) -> Option<&'e rustls::Error> {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    let inner = e.downcast_ref::<std::io::Error>()?.get_ref()?;
    rustls_inside(inner)
}

/// A reqwest error as an HAProxy-style reason.
fn classify(e: reqwest::Error) -> ProbeError {
    if e.is_builder() {
        return ProbeError::L7Rsp(format!("invalid check request: {e}"));
    }
    if e.is_timeout() {
        return if e.is_connect() {
            ProbeError::L4Timeout
        } else {
            ProbeError::L7Timeout
        };
    }
    // Find the innermost io::Error for a short, OS-style reason.
    let mut src: Option<&(dyn std::error::Error + 'static)> = e.source();
    let mut io_msg = None;
    let mut last = None;
    while let Some(s) = src {
        if let Some(tls) = rustls_inside(s) {
            return rustls_error(tls);
        }
        if let Some(io) = s.downcast_ref::<std::io::Error>() {
            if let ProbeError::Resource { resource, reason } = l4_error(io) {
                return ProbeError::Resource { resource, reason };
            }
            io_msg = Some(io_reason(io));
        }
        last = Some(s.to_string());
        src = s.source();
    }
    let reason = io_msg.or(last).unwrap_or_else(|| e.to_string());
    if e.is_connect() {
        ProbeError::L4Con(reason)
    } else {
        ProbeError::L7Rsp(reason)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::probe::testutil::{closed_port, http_server, serve};
    use tokio::io::AsyncReadExt;

    const T: Duration = Duration::from_secs(5);

    fn check(addr: std::net::SocketAddr, path: &str) -> HttpCheck {
        HttpCheck {
            url: format!("http://{addr}{path}"),
            username: None,
            password: None,
            expect_status: 200,
            expect_body: None,
            tls: None,
        }
    }

    #[tokio::test]
    async fn status_and_body_expectations() {
        let addr = http_server(|path, _| match path {
            "/ok" => (200, r#"{"status":"ok"}"#.into()),
            _ => (503, r#"{"status":"failed","reason":"alarm"}"#.into()),
        })
        .await;
        http(&check(addr, "/ok"), T).await.unwrap();

        let e = http(&check(addr, "/bad"), T).await.unwrap_err();
        assert_eq!(e, ProbeError::L7Status(503));
        assert_eq!(e.to_string(), "Layer7 wrong status: 503");

        let mut c = check(addr, "/ok");
        c.expect_body = Some(r#""status":"ok""#.into());
        http(&c, T).await.unwrap();
        c.expect_body = Some("nope".into());
        let e = http(&c, T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            r#"Layer7 invalid response: body does not contain "nope""#
        );
    }

    #[tokio::test]
    async fn sends_basic_auth() {
        let addr = http_server(|_, auth| match auth {
            // base64("admin:secret")
            Some("Basic YWRtaW46c2VjcmV0") => (200, "{}".into()),
            _ => (401, "{}".into()),
        })
        .await;
        let mut c = check(addr, "/");
        assert_eq!(http(&c, T).await.unwrap_err(), ProbeError::L7Status(401));
        c.username = Some("admin".into());
        c.password = Some("secret".into());
        http(&c, T).await.unwrap();
    }

    #[tokio::test]
    async fn refused() {
        let e = http(&check(closed_port().await, "/"), T).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "Layer4 connection problem: Connection refused"
        );
    }

    #[tokio::test]
    async fn silent_server_times_out() {
        let addr = serve(|mut s| async move {
            let mut sink = [0u8; 256];
            while let Ok(n) = s.read(&mut sink).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
        let e = http(&check(addr, "/"), Duration::from_millis(300))
            .await
            .unwrap_err();
        assert_eq!(e, ProbeError::L7Timeout);
    }

    #[tokio::test]
    async fn garbage_answer_is_invalid_response() {
        let addr = serve(|mut s| async move {
            use tokio::io::AsyncWriteExt;
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            let _ = s.write_all(b"\x00\x01garbage\r\n\r\n").await;
        })
        .await;
        let e = http(&check(addr, "/"), T).await.unwrap_err();
        assert!(
            matches!(e, ProbeError::L7Rsp(_)),
            "expected Layer7 invalid response, got {e}"
        );
    }

    #[tokio::test]
    async fn bad_url_is_an_error_not_a_panic() {
        let c = HttpCheck {
            url: "not a url".into(),
            username: None,
            password: None,
            expect_status: 200,
            expect_body: None,
            tls: None,
        };
        let e = http(&c, T).await.unwrap_err();
        assert!(e.to_string().starts_with("Layer7 invalid response"), "{e}");
    }
}
