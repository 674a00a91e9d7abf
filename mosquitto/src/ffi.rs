//! mosquitto's side: the plugin's entry points, its callbacks, and the broker functions it
//! calls. The only module with `unsafe`; each block says why it holds.
//!
//! The structs are declared here by hand, and `build.rs` reads Debian's headers
//! (`mosquitto_broker.h`, `mosquitto_plugin.h`, `mosquitto.h`) to check every offset and
//! constant this file relies on at compile time. mosquitto calls every callback on its one
//! thread; the callbacks never unwind into C (a panic becomes a refusal).

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::Config;
use crate::plugin::{Acl, Level, Login, Plugin};

mod layout {
    include!(concat!(env!("OUT_DIR"), "/layout.rs"));
}

/// mosquitto's client (opaque).
#[repr(C)]
struct Mosq {
    _private: [u8; 0],
}

#[repr(C)]
pub struct Opt {
    key: *mut c_char,
    value: *mut c_char,
}

#[repr(C)]
struct EvtBasicAuth {
    future: *mut c_void,
    client: *mut Mosq,
    username: *mut c_char,
    password: *mut c_char,
    future2: [*mut c_void; 4],
}

#[repr(C)]
struct EvtAclCheck {
    future: *mut c_void,
    client: *mut Mosq,
    topic: *const c_char,
    payload: *const c_void,
    properties: *mut c_void,
    access: c_int,
    payloadlen: u32,
    qos: u8,
    retain: bool,
    future2: [*mut c_void; 4],
}

#[repr(C)]
struct EvtDisconnect {
    future: *mut c_void,
    client: *mut Mosq,
    reason: c_int,
    future2: [*mut c_void; 4],
}

// The header's layout, checked when this crate compiles.
const _: () = {
    use std::mem::{offset_of, size_of};
    assert!(offset_of!(EvtBasicAuth, client) == layout::BASIC_AUTH_CLIENT);
    assert!(offset_of!(EvtBasicAuth, username) == layout::BASIC_AUTH_USERNAME);
    assert!(offset_of!(EvtBasicAuth, password) == layout::BASIC_AUTH_PASSWORD);
    assert!(size_of::<EvtBasicAuth>() == layout::BASIC_AUTH_SIZE);
    assert!(offset_of!(EvtAclCheck, client) == layout::ACL_CHECK_CLIENT);
    assert!(offset_of!(EvtAclCheck, topic) == layout::ACL_CHECK_TOPIC);
    assert!(offset_of!(EvtAclCheck, access) == layout::ACL_CHECK_ACCESS);
    assert!(size_of::<EvtAclCheck>() == layout::ACL_CHECK_SIZE);
    assert!(offset_of!(EvtDisconnect, client) == layout::DISCONNECT_CLIENT);
    assert!(size_of::<EvtDisconnect>() == layout::DISCONNECT_SIZE);
    assert!(offset_of!(Opt, key) == layout::OPT_KEY);
    assert!(offset_of!(Opt, value) == layout::OPT_VALUE);
    assert!(size_of::<Opt>() == layout::OPT_SIZE);
    assert!(layout::MOSQ_ACL_READ == crate::plugin::access::READ);
    assert!(layout::MOSQ_ACL_WRITE == crate::plugin::access::WRITE);
    assert!(layout::MOSQ_ACL_SUBSCRIBE == crate::plugin::access::SUBSCRIBE);
    assert!(layout::MOSQ_ACL_UNSUBSCRIBE == crate::plugin::access::UNSUBSCRIBE);
};

type Callback = unsafe extern "C" fn(event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int;

// The broker's functions (mosquitto exports them to its plugins), and two of the libcrypto
// that mosquitto itself links: resolved when mosquitto loads the plugin.
unsafe extern "C" {
    fn mosquitto_callback_register(
        identifier: *mut c_void,
        event: c_int,
        cb: Callback,
        event_data: *const c_void,
        userdata: *mut c_void,
    ) -> c_int;
    fn mosquitto_callback_unregister(
        identifier: *mut c_void,
        event: c_int,
        cb: Callback,
        event_data: *const c_void,
    ) -> c_int;
    fn mosquitto_log_printf(level: c_int, fmt: *const c_char, ...);
    fn mosquitto_client_id(client: *const Mosq) -> *const c_char;
    fn mosquitto_client_username(client: *const Mosq) -> *const c_char;
    fn mosquitto_client_certificate(client: *const Mosq) -> *mut c_void;
    fn mosquitto_set_username(client: *mut Mosq, username: *const c_char) -> c_int;
    fn mosquitto_kick_client_by_clientid(clientid: *const c_char, with_will: bool) -> c_int;
    fn mosquitto_broker_publish_copy(
        clientid: *const c_char,
        topic: *const c_char,
        payloadlen: c_int,
        payload: *const c_void,
        qos: c_int,
        retain: bool,
        properties: *mut c_void,
    ) -> c_int;
    fn i2d_X509(x: *mut c_void, out: *mut *mut u8) -> c_int;
    fn raise(signal: c_int) -> c_int;
    fn X509_free(x: *mut c_void);
}

/// What `userdata` points at: made in `mosquitto_plugin_init`, freed in `_cleanup`.
struct Shared {
    plugin: Arc<Plugin>,
    stop: Arc<AtomicBool>,
    /// The feed's thread, joined in cleanup: mosquitto unloads the library after it.
    feed: Option<std::thread::JoinHandle<()>>,
    identifier: *mut c_void,
}

const EVENTS: [(c_int, Callback); 4] = [
    (layout::MOSQ_EVT_BASIC_AUTH, on_basic_auth),
    (layout::MOSQ_EVT_ACL_CHECK, on_acl_check),
    (layout::MOSQ_EVT_TICK, on_tick),
    (layout::MOSQ_EVT_DISCONNECT, on_disconnect),
];

fn log(level: c_int, line: &str) {
    let Ok(line) = CString::new(line.replace('\0', " ")) else {
        return;
    };
    // SAFETY: both are NUL-terminated strings that outlive the call, and the format takes
    // exactly the one `%s` argument given.
    unsafe { mosquitto_log_printf(level, c"%s".as_ptr(), line.as_ptr()) };
}

/// Runs a callback's body; a panic is logged and answers `refused`.
fn guarded(refused: c_int, body: impl FnOnce() -> c_int) -> c_int {
    catch_unwind(AssertUnwindSafe(body)).unwrap_or_else(|_| {
        log(layout::MOSQ_LOG_ERR, "fleetca_mosquitto: a callback failed; refused");
        refused
    })
}

/// A C string the broker owns, as UTF-8 (`None` when null or not UTF-8).
///
/// # Safety
/// `p` is null or a NUL-terminated string that stays valid while the result is used.
unsafe fn text<'a>(p: *const c_char) -> Option<&'a str> {
    if p.is_null() {
        return None;
    }
    // SAFETY: not null, and NUL-terminated and alive per this function's contract.
    unsafe { CStr::from_ptr(p) }.to_str().ok()
}

/// The certificate the client presented (DER), when it did.
///
/// # Safety
/// `client` is a live client the broker passed to the current callback.
unsafe fn certificate(client: *const Mosq) -> Option<Vec<u8>> {
    // SAFETY: `client` is live (this function's contract); the function returns an X509
    // with a reference taken for us, or null.
    let x509 = unsafe { mosquitto_client_certificate(client) };
    if x509.is_null() {
        return None;
    }
    // SAFETY: `x509` is a valid X509; a null output pointer asks only for the length.
    let len = unsafe { i2d_X509(x509, std::ptr::null_mut()) };
    let der = usize::try_from(len).ok().filter(|n| *n > 0).map(|n| {
        let mut der = vec![0u8; n];
        let mut out = der.as_mut_ptr();
        // SAFETY: `der` has the `len` bytes i2d_X509 said it writes; it advances `out` only.
        let written = unsafe { i2d_X509(x509, &mut out) };
        der.truncate(usize::try_from(written).unwrap_or(0));
        der
    });
    // SAFETY: the reference mosquitto_client_certificate took is ours to drop, once.
    unsafe { X509_free(x509) };
    der.filter(|d| !d.is_empty())
}

/// # Safety
/// `userdata` is the `Shared` this plugin registered; it lives until `_cleanup`.
unsafe fn shared<'a>(userdata: *mut c_void) -> &'a Shared {
    // SAFETY: per this function's contract.
    unsafe { &*userdata.cast::<Shared>() }
}

unsafe extern "C" fn on_basic_auth(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(layout::MOSQ_ERR_AUTH, || {
        // SAFETY: mosquitto passes the userdata it was given at registration (a `Shared`)
        // and, for this event, a `mosquitto_evt_basic_auth` valid during the call.
        let (shared, event) = unsafe { (shared(userdata), &*event_data.cast::<EvtBasicAuth>()) };
        let client = event.client;
        // SAFETY: `client` is the live client of this event; the strings are the broker's,
        // valid during the call (null when absent).
        let (client_id, username, password, certificate) = unsafe {
            (
                text(mosquitto_client_id(client)).unwrap_or_default(),
                text(event.username),
                text(event.password),
                certificate(client),
            )
        };
        if !event.password.is_null() && password.is_none() {
            return layout::MOSQ_ERR_AUTH; // fleetca issues no password that is not UTF-8
        }
        let outcome = shared.plugin.login(
            client as usize,
            client_id,
            username.unwrap_or_default(),
            password.unwrap_or_default(),
            certificate.as_deref(),
        );
        match outcome {
            Login::Allow { username: Some(name) } if Some(name.as_str()) != username => {
                let Ok(name) = CString::new(name) else {
                    return layout::MOSQ_ERR_AUTH;
                };
                // SAFETY: `client` is live; mosquitto copies the string.
                match unsafe { mosquitto_set_username(client, name.as_ptr()) } {
                    0 => layout::MOSQ_ERR_SUCCESS,
                    _ => layout::MOSQ_ERR_AUTH,
                }
            }
            Login::Allow { .. } => layout::MOSQ_ERR_SUCCESS,
            Login::Deny => layout::MOSQ_ERR_AUTH,
            Login::Defer => layout::MOSQ_ERR_PLUGIN_DEFER,
        }
    })
}

unsafe extern "C" fn on_acl_check(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(layout::MOSQ_ERR_ACL_DENIED, || {
        // SAFETY: as in `on_basic_auth`, with a `mosquitto_evt_acl_check`.
        let (shared, event) = unsafe { (shared(userdata), &*event_data.cast::<EvtAclCheck>()) };
        let client = event.client;
        // SAFETY: `client` is live during the call; the strings are the broker's.
        let (client_id, username, topic) = unsafe {
            (
                text(mosquitto_client_id(client)).unwrap_or_default(),
                text(mosquitto_client_username(client)),
                text(event.topic),
            )
        };
        let Some(topic) = topic else {
            return layout::MOSQ_ERR_ACL_DENIED;
        };
        // SAFETY: called within this callback, while `client` is live.
        let presented = || unsafe { certificate(client) };
        match shared
            .plugin
            .acl(client as usize, client_id, username, topic, event.access, presented)
        {
            Acl::Allow => layout::MOSQ_ERR_SUCCESS,
            Acl::Deny => layout::MOSQ_ERR_ACL_DENIED,
            Acl::Defer => layout::MOSQ_ERR_PLUGIN_DEFER,
        }
    })
}

unsafe extern "C" fn on_tick(_event: c_int, _event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(layout::MOSQ_ERR_SUCCESS, || {
        // SAFETY: mosquitto passes the `Shared` it was given at registration.
        let shared = unsafe { shared(userdata) };
        let work = shared.plugin.tick();
        for (level, line) in work.log {
            let level = match level {
                Level::Info => layout::MOSQ_LOG_NOTICE,
                Level::Warning => layout::MOSQ_LOG_WARNING,
            };
            log(level, &line);
        }
        if work.reload {
            log(
                layout::MOSQ_LOG_NOTICE,
                "fleetca_mosquitto: fleetca wrote its CRL file; reloading",
            );
            // SAFETY: raise() only queues a signal for this process; mosquitto's own SIGHUP
            // handler sets its reload flag, read by its main loop, as `kill -HUP` would.
            unsafe { raise(layout::SIGHUP) };
        }
        for client_id in work.kicks {
            if let Ok(id) = CString::new(client_id) {
                // SAFETY: a NUL-terminated string alive for the call, on the broker's thread
                // (the tick), where mosquitto allows a kick.
                unsafe { mosquitto_kick_client_by_clientid(id.as_ptr(), false) };
            }
        }
        for (client_id, topic, payload) in work.messages {
            let (Ok(id), Ok(topic), Ok(len)) = (
                CString::new(client_id),
                CString::new(topic),
                c_int::try_from(payload.len()),
            ) else {
                continue;
            };
            // SAFETY: the strings and payload outlive the call, which copies them; no
            // properties. QoS 1 to that one client.
            unsafe {
                mosquitto_broker_publish_copy(
                    id.as_ptr(),
                    topic.as_ptr(),
                    len,
                    payload.as_ptr().cast(),
                    1,
                    false,
                    std::ptr::null_mut(),
                )
            };
        }
        layout::MOSQ_ERR_SUCCESS
    })
}

unsafe extern "C" fn on_disconnect(_event: c_int, event_data: *mut c_void, userdata: *mut c_void) -> c_int {
    guarded(layout::MOSQ_ERR_SUCCESS, || {
        // SAFETY: as in `on_basic_auth`, with a `mosquitto_evt_disconnect`.
        let (shared, event) = unsafe { (shared(userdata), &*event_data.cast::<EvtDisconnect>()) };
        shared.plugin.disconnected(event.client as usize);
        layout::MOSQ_ERR_SUCCESS
    })
}

/// Plugin API version 5 (mosquitto 2.0), when the broker offers it.
///
/// # Safety
/// `versions` points at `count` integers (mosquitto's contract).
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_version(count: c_int, versions: *const c_int) -> c_int {
    let count = usize::try_from(count).unwrap_or(0);
    if versions.is_null() {
        return -1;
    }
    // SAFETY: `versions` points at `count` integers (this function's contract).
    let offered = unsafe { std::slice::from_raw_parts(versions, count) };
    if offered.contains(&5) { 5 } else { -1 }
}

/// Reads the options, starts the feed's thread and registers the callbacks.
///
/// # Safety
/// mosquitto's contract: `identifier` is this plugin's, `userdata` writable, `options`
/// points at `count` options whose strings live during the call.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_init(
    identifier: *mut c_void,
    userdata: *mut *mut c_void,
    options: *mut Opt,
    count: c_int,
) -> c_int {
    guarded(layout::MOSQ_ERR_UNKNOWN, || {
        let count = usize::try_from(count).unwrap_or(0);
        let options: &[Opt] = if options.is_null() || count == 0 {
            &[]
        } else {
            // SAFETY: `options` points at `count` options (this function's contract).
            unsafe { std::slice::from_raw_parts(options, count) }
        };
        // SAFETY: each option's key and value are NUL-terminated strings living during the call.
        let pairs: Vec<(&str, &str)> = options
            .iter()
            .filter_map(|o| unsafe { Some((text(o.key)?, text(o.value)?)) })
            .collect();
        let plugin = match Config::parse(pairs).and_then(Plugin::new) {
            Ok(p) => Arc::new(p),
            Err(e) => {
                log(layout::MOSQ_LOG_ERR, &format!("fleetca_mosquitto: {e}"));
                return layout::MOSQ_ERR_UNKNOWN;
            }
        };
        let stop = Arc::new(AtomicBool::new(false));
        let (p, s) = (plugin.clone(), stop.clone());
        let feed = match std::thread::Builder::new()
            .name("fleetca-feed".into())
            .spawn(move || crate::feed::run(p, s))
        {
            Ok(handle) => handle,
            Err(e) => {
                log(
                    layout::MOSQ_LOG_ERR,
                    &format!("fleetca_mosquitto: the feed's thread: {e}"),
                );
                return layout::MOSQ_ERR_UNKNOWN;
            }
        };
        log(
            layout::MOSQ_LOG_NOTICE,
            &format!(
                "fleetca_mosquitto {}: asking {} as broker {:?} (cache {})",
                env!("CARGO_PKG_VERSION"),
                plugin.config.url,
                plugin.config.broker,
                if plugin.config.cache { "on" } else { "off" }
            ),
        );
        let raw = Box::into_raw(Box::new(Shared {
            plugin,
            stop,
            feed: Some(feed),
            identifier,
        }))
        .cast::<c_void>();
        // SAFETY: `userdata` is writable (this function's contract); mosquitto hands it back
        // to `mosquitto_plugin_cleanup`.
        unsafe { *userdata = raw };
        for (event, callback) in EVENTS {
            // SAFETY: `identifier` is this plugin's; `raw` stays valid until cleanup, which
            // unregisters these callbacks first.
            if unsafe { mosquitto_callback_register(identifier, event, callback, std::ptr::null(), raw) } != 0 {
                log(
                    layout::MOSQ_LOG_ERR,
                    "fleetca_mosquitto: a callback could not be registered",
                );
                return layout::MOSQ_ERR_UNKNOWN;
            }
        }
        layout::MOSQ_ERR_SUCCESS
    })
}

/// Unregisters the callbacks and stops the feed's thread, waiting for it.
///
/// # Safety
/// `userdata` is what `mosquitto_plugin_init` stored, passed once.
#[unsafe(no_mangle)]
pub unsafe extern "C" fn mosquitto_plugin_cleanup(userdata: *mut c_void, _options: *mut Opt, _count: c_int) -> c_int {
    guarded(layout::MOSQ_ERR_SUCCESS, || {
        if userdata.is_null() {
            return layout::MOSQ_ERR_SUCCESS;
        }
        // SAFETY: `userdata` came from `Box::into_raw` in init and is given back once.
        let mut shared = unsafe { Box::from_raw(userdata.cast::<Shared>()) };
        for (event, callback) in EVENTS {
            // SAFETY: the identifier these callbacks were registered with.
            unsafe { mosquitto_callback_unregister(shared.identifier, event, callback, std::ptr::null()) };
        }
        shared.stop.store(true, Ordering::Relaxed);
        // Its poll ends within FEED_WAIT (plus the HTTP client's margin): the thread must be
        // gone before mosquitto unloads the code it runs.
        if let Some(feed) = shared.feed.take() {
            let _ = feed.join();
        }
        layout::MOSQ_ERR_SUCCESS
    })
}
