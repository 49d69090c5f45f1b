//! `interface` check: a network interface is operationally up
//! (keepalived's `track_interface`).

use super::error::ProbeError;

/// Passes when `/sys/class/net/<name>/operstate` reads `up`, or `unknown`
/// (what the kernel reports for interfaces without carrier detection, such
/// as loopback and many virtual ones).
pub(crate) async fn interface(name: &str) -> Result<(), ProbeError> {
    let path = format!("/sys/class/net/{name}/operstate");
    match tokio::fs::read_to_string(&path).await {
        Ok(state) if matches!(state.trim(), "up" | "unknown") => Ok(()),
        Ok(state) => Err(ProbeError::InterfaceDown {
            name: name.to_owned(),
            operstate: state.trim().to_owned(),
        }),
        Err(_) => Err(ProbeError::NoInterface(name.to_owned())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn loopback_is_up_and_a_missing_interface_is_named() {
        interface("lo").await.unwrap();
        let e = interface("wvipnosuch0").await.unwrap_err();
        assert_eq!(e, ProbeError::NoInterface("wvipnosuch0".into()));
        assert_eq!(e.to_string(), "interface wvipnosuch0 does not exist");
    }

    #[test]
    fn a_down_interface_reads_like_before() {
        let e = ProbeError::InterfaceDown {
            name: "eth1".into(),
            operstate: "down".into(),
        };
        assert_eq!(e.to_string(), "interface eth1 is down");
    }
}
