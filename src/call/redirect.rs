//! Where each request of an upload goes, and the rules for following a redirect.
//!
//! The upload is one [`Upload`](super::prepare::Upload); each request of it (the first, then
//! one per redirect followed) is a [`Hop`]: its URL, where that connects, its method, and
//! whether the chain has left the first origin. Following a redirect makes the next hop from
//! the response, by the rules browsers apply:
//!
//! - 301, 302, 303, 307 and 308 with a `Location` are followed, up to
//!   [`ClientConfig::max_redirects`](crate::ClientConfig::max_redirects) (`0`: the 3xx response
//!   itself is the result);
//! - 307 and 308 repeat the request, body and all (re-read from disk); 301, 302 and 303 turn a
//!   POST into a GET without a body;
//! - an `https://` → `http://` downgrade is refused, as is any URL the client could not have
//!   been given in the first place;
//! - once the chain leaves the first origin, credentials (`Authorization`, `Cookie`,
//!   `Proxy-Authorization`) stay behind, and `redirectStart` / `redirectEnd` are not reported.

use url::Url;

use crate::error::{ErrorKind, UploadError};
use crate::transport::route::{Route, Routing};
use crate::transport::target::{parse_url, parse_url_parts, Target};

/// The request method of one hop: the upload itself, or the GET a 301/302/303 redirect turns
/// it into.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Post,
    Get,
}

impl Method {
    /// The method's name on the wire.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Method::Post => "POST",
            Method::Get => "GET",
        }
    }
}

/// One request of an upload: where it goes and how.
#[derive(Debug)]
pub(crate) struct Hop {
    pub url: Url,
    pub target: Target,
    /// How the hop's connection reaches its origin (direct, or through which proxy).
    pub route: Route,
    pub method: Method,
    /// The chain has left the first origin: credentials stay behind.
    pub left_origin: bool,
}

impl Hop {
    /// The upload's first request, a POST to `url`, routed by `routing`.
    pub(crate) fn first(url: &str, routing: Routing<'_>) -> Result<Hop, UploadError> {
        let (url, target) = parse_url_parts(url)?;
        let route = Route::choose(routing, &target.origin)?;
        Ok(Hop {
            url,
            target,
            route,
            method: Method::Post,
            left_origin: false,
        })
    }

    /// Whether a response with `status` and `location` is a redirect to follow under a limit
    /// of `max_redirects` (0: never).
    pub(crate) fn is_followed_redirect(
        status: u16,
        location: Option<&str>,
        max_redirects: u32,
    ) -> bool {
        matches!(status, 301 | 302 | 303 | 307 | 308) && location.is_some() && max_redirects > 0
    }

    /// The hop a redirect answered with `status` and `location` leads to. Refuses an
    /// https -> http downgrade and any URL this client could not have been given in the first
    /// place. The new hop is routed by `routing` (a redirect to another origin may go direct
    /// where the first went through a proxy, or the other way round).
    pub(crate) fn follow(
        &self,
        status: u16,
        location: &str,
        routing: Routing<'_>,
    ) -> Result<Hop, UploadError> {
        let next = self.url.join(location).map_err(|e| {
            UploadError::new(
                ErrorKind::RedirectRefused,
                format!("Location {location:?} is not a URL: {e}"),
            )
        })?;
        if self.url.scheme() == "https" && next.scheme() == "http" {
            return Err(UploadError::new(
                ErrorKind::RedirectRefused,
                format!("https -> http downgrade to {next}"),
            ));
        }
        let target = parse_url(next.as_str()).map_err(|e| {
            UploadError::new(
                ErrorKind::RedirectRefused,
                format!("to {next}: {}", e.detail()),
            )
        })?;
        let left_origin = self.left_origin || target.origin != self.target.origin;
        let route = Route::choose(routing, &target.origin)?;
        // 307/308 repeat the request, body and all; 301/302/303 turn a POST into a GET without a
        // body, as browsers do.
        let method = if matches!(status, 301..=303) {
            Method::Get
        } else {
            self.method
        };
        Ok(Hop {
            url: next,
            target,
            route,
            method,
            left_origin,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_and_origin_follow_the_status_and_the_location() {
        let first = Hop::first("https://a.example/upload", Routing::direct()).unwrap();
        let same = first.follow(307, "/again", Routing::direct()).unwrap();
        assert_eq!(same.method, Method::Post);
        assert!(!same.left_origin);
        assert_eq!(same.url.as_str(), "https://a.example/again");
        let other = same
            .follow(302, "https://b.example/x", Routing::direct())
            .unwrap();
        assert_eq!(other.method, Method::Get);
        assert!(other.left_origin);
        // Once left, the chain stays "left", even back on the first origin.
        let back = other
            .follow(308, "https://a.example/y", Routing::direct())
            .unwrap();
        assert!(back.left_origin);
        assert_eq!(back.method, Method::Get);
    }

    #[test]
    fn downgrades_and_unusable_urls_are_refused() {
        let first = Hop::first("https://a.example/upload", Routing::direct()).unwrap();
        for location in [
            "http://a.example/x",
            "ftp://a.example/x",
            "https://u:p@a.example/",
        ] {
            let e = first.follow(307, location, Routing::direct()).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::RedirectRefused, "{location}");
        }
    }

    #[test]
    fn only_redirect_statuses_with_a_location_are_followed() {
        assert!(Hop::is_followed_redirect(302, Some("/x"), 10));
        assert!(!Hop::is_followed_redirect(302, None, 10));
        assert!(!Hop::is_followed_redirect(302, Some("/x"), 0));
        assert!(!Hop::is_followed_redirect(304, Some("/x"), 10));
    }
}
