//! Readiness for a service manager (systemd `Type=notify`, `etc/glint.service`): READY once
//! every listener accepts, RELOADING/READY around a SIGHUP reload, STOPPING when a stop
//! begins. Without `$NOTIFY_SOCKET` (not started by systemd) each call does nothing.

use sd_notify::NotifyState;

/// Every listener accepts connections; `status` is what `systemctl status` shows.
pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

/// A SIGHUP reload began (systemd ≥ 253 wants the monotonic time with it); `ready` ends it.
pub fn reloading() {
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(e) => tracing::debug!(error = %e, "reading the monotonic clock failed"),
    }
}

/// A stop began: requests in flight are finishing.
pub fn stopping() {
    send(&[NotifyState::Stopping, NotifyState::Status("stopping")]);
}

fn send(states: &[NotifyState<'_>]) {
    if let Err(e) = sd_notify::notify(false, states) {
        tracing::warn!(error = %e, "notifying the service manager failed");
    }
}
