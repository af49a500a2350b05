use std::fmt;

/// The request's deadline had passed, or passed while the call ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Expired(pub(crate) ());

impl Expired {
    /// The error.
    pub fn new() -> Expired {
        Expired(())
    }
}

impl fmt::Display for Expired {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the request's deadline has passed")
    }
}

impl std::error::Error for Expired {}
