//! The certificates `scripts/testbed tls-cert --kind` puts on a node.

/// What a node of an `up --tls` bed serves after
/// [`crate::Testbed::tls_cert`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertKind {
    /// Names the node (its IP and `rabbitN.testbed`), valid now, signed by
    /// the bed's CA: what `up --tls` gives every node.
    Good,
    /// As `Good`, but it ended on 2021-01-01.
    Expired,
    /// Valid and signed by the bed's CA, for `wrong.testbed` only.
    WrongName,
    /// Names the node, signed by the bed's other CA (`tls.other_ca`).
    OtherCa,
}

impl CertKind {
    /// The `--kind` value.
    pub fn as_arg(self) -> &'static str {
        match self {
            CertKind::Good => "good",
            CertKind::Expired => "expired",
            CertKind::WrongName => "wrong-name",
            CertKind::OtherCa => "other-ca",
        }
    }
}
