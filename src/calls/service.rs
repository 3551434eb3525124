//! What a service is: a closure from request bytes to answer bytes, the
//! error it may return, and a bridge's table of them.

use std::collections::HashMap;
use std::sync::Arc;

use crate::layout::{CALL_FAILED, CALL_FIRST_SERVICE_CODE};

/// A service's failure: the calling kernel thread gets `code` as its
/// call's status, and the bridge logs `message` (target `ringbridge`) and
/// counts it in [`CallStats::failed`].
///
/// ```
/// use ringbridge::calls::ServiceError;
/// use ringbridge::layout::{CALL_FAILED, CALL_FIRST_SERVICE_CODE};
/// assert_eq!(ServiceError::new("no such page").code(), CALL_FAILED);
/// let e = ServiceError::with_code(CALL_FIRST_SERVICE_CODE + 1, "page 9 is past the end");
/// assert_eq!(e.code(), 17);
/// assert_eq!(e.to_string(), "page 9 is past the end (code 17)");
/// // codes below CALL_FIRST_SERVICE_CODE are ringbridge's own
/// assert_eq!(ServiceError::with_code(3, "x").code(), CALL_FAILED);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceError {
    code: u32,
    message: String,
}

impl ServiceError {
    /// A failure with status [`CALL_FAILED`].
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            code: CALL_FAILED,
            message: message.into(),
        }
    }

    /// A failure with a status of the service's own, at least
    /// [`CALL_FIRST_SERVICE_CODE`] (a lower code becomes [`CALL_FAILED`]:
    /// those are ringbridge's).
    pub fn with_code(code: u32, message: impl Into<String>) -> Self {
        Self {
            code: if code >= CALL_FIRST_SERVICE_CODE {
                code
            } else {
                CALL_FAILED
            },
            message: message.into(),
        }
    }

    /// A failure with one of ringbridge's own statuses.
    pub(crate) fn internal(code: u32, message: String) -> Self {
        Self { code, message }
    }

    /// The status the calling kernel thread gets.
    pub fn code(&self) -> u32 {
        self.code
    }

    /// What the bridge logs.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (code {})", self.message, self.code)
    }
}

impl std::error::Error for ServiceError {}

impl From<String> for ServiceError {
    fn from(message: String) -> Self {
        Self::new(message)
    }
}

impl From<&str> for ServiceError {
    fn from(message: &str) -> Self {
        Self::new(message)
    }
}

/// A registered service.
pub(crate) type ServiceFn =
    Arc<dyn Fn(&[u8]) -> Result<Vec<u8>, ServiceError> + Send + Sync + 'static>;

/// A bridge's services by id.
#[derive(Clone, Default)]
pub(crate) struct Services {
    by_id: HashMap<u32, ServiceFn>,
}

impl Services {
    /// Adds `f` under `id`; false when `id` is taken.
    pub(crate) fn insert(&mut self, id: u32, f: ServiceFn) -> bool {
        if self.by_id.contains_key(&id) {
            return false;
        }
        self.by_id.insert(id, f);
        true
    }

    pub(crate) fn get(&self, id: u32) -> Option<&ServiceFn> {
        self.by_id.get(&id)
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// The ids, sorted (for `Debug`).
    pub(crate) fn ids(&self) -> Vec<u32> {
        let mut ids: Vec<u32> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("ids", &self.ids())
            .finish()
    }
}

/// What a bridge's call ring has carried ([`BridgeStats::calls`]).
///
/// [`BridgeStats::calls`]: crate::BridgeStats::calls
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[cfg_attr(feature = "serde", derive(serde::Serialize))]
pub struct CallStats {
    /// Calls answered (by the service, or with an error status).
    pub served: u64,
    /// Of those, answered with an error status: unknown id, the service
    /// failed, panicked or timed out, or the bridge was shutting down.
    pub failed: u64,
    /// Log lines logged.
    pub logged: u64,
}
