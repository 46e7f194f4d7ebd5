//! TLS to the server: what `sslmode` and `sslrootcert` in a URL mean, read
//! as libpq reads them, and what a connection that failed over TLS says.
//!
//! sqlx does the TLS (rustls by default, the platform's library with the
//! `tls-native-tls` feature); this module settles the parameters before it
//! sees them, where sqlx and libpq differ:
//!
//! - `sslmode=allow` is `prefer`: sqlx's `allow` never tries TLS, so a server
//!   that requires it would be refused where libpq connects.
//! - `sslmode=require` with an `sslrootcert` checks the server's certificate
//!   against it, as `verify-ca` does (libpq: "if a root CA file exists, the
//!   behavior of sslmode=require will be the same as that of verify-ca").
//! - `sslrootcert=system` trusts the TLS library's root certificates and
//!   needs `verify-full` (its default then), as in libpq 16.
//! - A certificate or key file that cannot be read is refused before any
//!   connection is tried, naming the file.

use std::borrow::Cow;

use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// The `sslmode` values accepted, weakest first.
pub(crate) const SSLMODES: &str = "disable, allow, prefer, require, verify-ca, verify-full";

/// The TLS parameters of a URL, as given.
#[derive(Debug, Default)]
pub(crate) struct TlsParams {
    /// `sslmode=`, parsed.
    pub mode: Option<PgSslMode>,
    /// `sslrootcert=` (decoded), unless it is `system`.
    pub rootcert: Option<String>,
    /// `sslrootcert=system`.
    pub system_roots: bool,
    /// `sslcert=` and `sslkey=` (decoded), with the parameter's name.
    pub client_files: Vec<(&'static str, String)>,
}

impl TlsParams {
    /// Takes in one `name=value` pair of the URL's query. Returns whether
    /// the pair still goes to sqlx (`Ok(false)`: kyu applies it itself).
    pub fn take(&mut self, name: &str, value: &str) -> Result<bool, String> {
        match name {
            "sslmode" | "ssl-mode" => {
                self.mode = Some(parse_sslmode(&decode(value))?);
                Ok(false)
            }
            "sslrootcert" | "ssl-root-cert" | "ssl-ca" => {
                let v = decode(value);
                if v == "system" {
                    self.system_roots = true;
                    Ok(false)
                } else {
                    self.rootcert = Some(v.into_owned());
                    Ok(true)
                }
            }
            "sslcert" | "ssl-cert" => {
                self.client_files.push(("sslcert", decode(value).into()));
                Ok(true)
            }
            "sslkey" | "ssl-key" => {
                self.client_files.push(("sslkey", decode(value).into()));
                Ok(true)
            }
            _ => Ok(true),
        }
    }

    /// Settles the TLS options of `options` (which sqlx made from the rest of
    /// the URL and the `PG*` environment variables).
    pub fn apply(self, mut options: PgConnectOptions) -> Result<PgConnectOptions, String> {
        if let Some(mode) = self.mode {
            options = options.ssl_mode(mode);
        }
        let mut mode = options.get_ssl_mode();
        if self.system_roots {
            match self.mode {
                None | Some(PgSslMode::VerifyFull) => mode = PgSslMode::VerifyFull,
                Some(weak) => {
                    return Err(format!(
                        "sslrootcert=system needs sslmode=verify-full (the public root \
                         certificates vouch for a host name, not for a server), not \
                         sslmode={}",
                        mode_name(weak)
                    ))
                }
            }
        }
        let rootcert = self
            .rootcert
            .or_else(|| std::env::var("PGSSLROOTCERT").ok());
        mode = match mode {
            PgSslMode::Allow => PgSslMode::Prefer,
            PgSslMode::Require if rootcert.is_some() => PgSslMode::VerifyCa,
            m => m,
        };
        if matches!(mode, PgSslMode::VerifyCa | PgSslMode::VerifyFull) {
            if let Some(path) = &rootcert {
                readable(
                    "sslrootcert",
                    path,
                    "the PEM file of the CA that signed the server's certificate",
                )?;
            }
        }
        if !matches!(mode, PgSslMode::Disable) {
            for (name, path) in &self.client_files {
                readable(name, path, "a PEM file")?;
            }
        }
        Ok(options.ssl_mode(mode))
    }
}

/// `value` as an sslmode, or what is accepted.
fn parse_sslmode(value: &str) -> Result<PgSslMode, String> {
    Ok(match value {
        "disable" => PgSslMode::Disable,
        "allow" => PgSslMode::Allow,
        "prefer" => PgSslMode::Prefer,
        "require" => PgSslMode::Require,
        "verify-ca" => PgSslMode::VerifyCa,
        "verify-full" => PgSslMode::VerifyFull,
        other => {
            return Err(format!(
                "sslmode parameter: {other:?} is not accepted; give one of {SSLMODES}"
            ))
        }
    })
}

/// The URL spelling of `mode`.
pub(crate) fn mode_name(mode: PgSslMode) -> &'static str {
    match mode {
        PgSslMode::Disable => "disable",
        PgSslMode::Allow => "allow",
        PgSslMode::Prefer => "prefer",
        PgSslMode::Require => "require",
        PgSslMode::VerifyCa => "verify-ca",
        PgSslMode::VerifyFull => "verify-full",
    }
}

/// Refuses a certificate or key file that cannot be read. An inline PEM
/// (sqlx accepts one in place of a path) is not a file.
fn readable(param: &str, path: &str, what: &str) -> Result<(), String> {
    if path.trim_start().starts_with("-----BEGIN") {
        return Ok(());
    }
    std::fs::File::open(path)
        .map(drop)
        .map_err(|e| format!("{param}={path}: cannot read the file ({e}); give {what}"))
}

/// A query value decoded as sqlx decodes it (`application/x-www-form-urlencoded`:
/// `%XX` and `+` for a space), so kyu checks the file sqlx will read.
fn decode(value: &str) -> Cow<'_, str> {
    if !value.contains(['%', '+']) {
        return Cow::Borrowed(value);
    }
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (hex(bytes.get(i + 1)), hex(bytes.get(i + 2))) {
                (Some(high), Some(low)) => {
                    out.push(high * 16 + low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// The value of one hexadecimal digit.
fn hex(b: Option<&u8>) -> Option<u8> {
    b.and_then(|b| (*b as char).to_digit(16)).map(|d| d as u8)
}

/// What a failed first connection says: where (the URL, password
/// redacted), with which sslmode when TLS was involved, and what to do.
pub(crate) fn connect_error(url: &str, options: &PgConnectOptions, e: sqlx::Error) -> String {
    let at = super::url::redact(url);
    let mode = mode_name(options.get_ssl_mode());
    let Some(tls) = tls_failure(&e) else {
        return format!("cannot connect to PostgreSQL at {at}: {e}");
    };
    if tls == "server does not support TLS" {
        return format!(
            "the server at {at} does not offer TLS (sslmode={mode}); switch TLS on in the \
             server (ssl = on, with ssl_cert_file and ssl_key_file), or connect with \
             sslmode=prefer (TLS when offered) or sslmode=disable"
        );
    }
    if tls.contains("built without TLS support") {
        return format!(
            "cannot connect to PostgreSQL at {at}: sslmode={mode} needs TLS, and this kyu \
             was built without it; build kyu with the feature tls-rustls (the default) or \
             tls-native-tls"
        );
    }
    let roots = match query_value(url, &["sslrootcert", "ssl-root-cert", "ssl-ca"]) {
        Some(path) => format!("sslrootcert={}", decode(path)),
        None => "the TLS library's root certificates".to_string(),
    };
    let mode = match (
        options.get_ssl_mode(),
        query_value(url, &["sslmode", "ssl-mode"]),
    ) {
        (PgSslMode::VerifyCa, Some("require")) => {
            "verify-ca: require with an sslrootcert checks the CA, as in libpq".to_string()
        }
        _ => mode.to_string(),
    };
    let hint = match options.get_ssl_mode() {
        PgSslMode::VerifyFull => format!(
            "; the server's certificate must be signed by a CA in {roots} and name the \
             host {}",
            options.get_host()
        ),
        PgSslMode::VerifyCa => {
            format!("; the server's certificate must be signed by a CA in {roots}")
        }
        _ => String::new(),
    };
    format!("TLS with the server at {at} failed (sslmode={mode}): {tls}{hint}")
}

/// The TLS error inside `e`, if it is one: sqlx reports a refused
/// handshake as [`sqlx::Error::Tls`], or (rustls) as an I/O error carrying
/// the rustls error.
fn tls_failure(e: &sqlx::Error) -> Option<String> {
    match e {
        sqlx::Error::Tls(inner) => Some(inner.to_string()),
        #[cfg(feature = "tls-rustls")]
        sqlx::Error::Io(io) => io
            .get_ref()
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            .map(|r| r.to_string()),
        _ => None,
    }
}

/// The raw value of the first of `names` in `url`'s query.
fn query_value<'a>(url: &'a str, names: &[&str]) -> Option<&'a str> {
    let (_, query) = url.split_once('?')?;
    query.split('&').find_map(|pair| {
        let (k, v) = pair.split_once('=')?;
        names.contains(&k).then_some(v)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_decoded_as_sqlx_decodes_them() {
        assert_eq!(decode("/etc/ssl/ca.pem"), "/etc/ssl/ca.pem");
        assert_eq!(decode("/my%20certs/ca+1.pem"), "/my certs/ca 1.pem");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz"), "%zz");
        assert_eq!(decode("%é%4"), "%é%4");
    }

    #[test]
    fn tls_errors_say_where_with_which_sslmode_and_what_to_do() {
        let url =
            "postgres://app:s3cret@db.example:5432/app?sslmode=verify-full&sslrootcert=/etc/ca.pem";
        let options = PgConnectOptions::new()
            .host("db.example")
            .ssl_mode(PgSslMode::VerifyFull);
        let e = connect_error(
            url,
            &options,
            sqlx::Error::Tls("invalid peer certificate: UnknownIssuer".into()),
        );
        assert!(
            e.starts_with("TLS with the server at postgres://app:***@db.example:5432/app"),
            "{e}"
        );
        assert!(e.contains("failed (sslmode=verify-full): "), "{e}");
        assert!(
            e.contains("signed by a CA in sslrootcert=/etc/ca.pem"),
            "{e}"
        );
        assert!(e.contains("UnknownIssuer"), "{e}");
        assert!(e.contains("name the host db.example"), "{e}");
        assert!(!e.contains("s3cret"), "{e}");

        let options = options.ssl_mode(PgSslMode::Require);
        let e = connect_error(
            url,
            &options,
            sqlx::Error::Tls("server does not support TLS".into()),
        );
        assert!(e.contains("does not offer TLS (sslmode=require)"), "{e}");
        let e = connect_error(
            url,
            &options,
            sqlx::Error::Tls(
                "TLS upgrade required by connect options but SQLx was built without TLS \
                 support enabled"
                    .into(),
            ),
        );
        assert!(e.contains("built without it"), "{e}");
        assert!(e.contains("tls-rustls"), "{e}");

        let e = connect_error(url, &options, sqlx::Error::PoolTimedOut);
        assert!(
            e.starts_with("cannot connect to PostgreSQL at postgres://app:***@"),
            "{e}"
        );
    }
}
