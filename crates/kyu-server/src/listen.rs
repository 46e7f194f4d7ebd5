//! The listener: parsing the address, binding with an error that names it,
//! serving until a shutdown signal.

use std::future::Future;
use std::net::SocketAddr;

use axum::Router;
use tokio::net::TcpListener;

use crate::Error;

/// Parses a listen address (`IP:PORT`); `field` names where it came from
/// in the error.
pub fn parse_addr(field: &str, value: &str) -> Result<SocketAddr, Error> {
    value.trim().parse().map_err(|_| Error::BadAddress {
        field: field.to_string(),
        value: value.to_string(),
    })
}

/// Listens on `addr`. A port in use, or an address that is not this
/// host's, fails with [`Error::Bind`] naming the address.
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, Error> {
    TcpListener::bind(addr).await.map_err(|source| {
        let reason = match source.kind() {
            std::io::ErrorKind::AddrInUse => {
                "the address is already in use (another kyu or another program listens there)"
                    .to_string()
            }
            std::io::ErrorKind::AddrNotAvailable => {
                "the address is not one of this host's".to_string()
            }
            std::io::ErrorKind::PermissionDenied => {
                "permission denied (ports below 1024 need privileges)".to_string()
            }
            _ => source.to_string(),
        };
        Error::Bind {
            addr,
            reason,
            source,
        }
    })
}

/// Serves `app` on `listener` until `shutdown` completes, then lets
/// requests in flight finish.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    axum::serve(listener, app)
        .with_graceful_shutdown(shutdown)
        .await?;
    Ok(())
}
