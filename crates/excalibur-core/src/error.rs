//! Error helpers shared by every crate: a `Display` adapter that walks the source chain.

use std::fmt;

/// Displays an error followed by each of its sources, joined by `: `.
///
/// Use it in logs (`warn!(error = %ErrorChain(&e), ...)`); error `Display`
/// implementations never include their source themselves.
#[derive(Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut source = self.0.source();
        while let Some(e) = source {
            write!(f, ": {e}")?;
            source = e.source();
        }
        Ok(())
    }
}
