//! One test alone in a process of its own.
//!
//! The integration tests share one binary (`tests/suite`), so one process, and libtest runs them
//! on parallel threads. A test that measures the whole process — the descriptors in
//! `/proc/self/fd`, the RSS — would count what the tests beside it open and allocate, and could
//! neither stay strict nor be reliable. Such a test starts with [`ran_in_child`]: in the normal
//! run of the binary it runs the binary again for that one test (`--exact`), with [`CHILD_ENV`]
//! naming the test, shows the child's output, and fails if the child failed or ran no test; in the
//! child it returns `false`, and the test's body runs alone in its process.

use std::process::Command;

/// Set (to the test's name) in the child process that runs one test alone.
pub const CHILD_ENV: &str = "UPLOADFILE_TEST_ALONE";

/// Runs the test named `test` (its full libtest name, `module::function`) in a child process of
/// this binary, unless this is that child.
///
/// `true`: the child ran it and it passed; the caller returns. `false`: this is the child; the
/// caller goes on with the test's body. Panics (failing the test) when the child failed, or ran
/// no test at all, so a misspelt name cannot pass.
#[must_use]
pub fn ran_in_child(test: &str) -> bool {
    if std::env::var_os(CHILD_ENV).is_some_and(|v| v == test) {
        return false;
    }
    let exe = std::env::current_exe().expect("the test binary's path");
    let out = Command::new(exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, test)
        .output()
        .expect("the test binary runs again");
    let stdout = String::from_utf8_lossy(&out.stdout);
    // Captured by libtest like the test's own output: shown when it fails, or with --nocapture.
    print!("{stdout}");
    eprint!("{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        out.status.success(),
        "{test} failed in a process of its own ({})",
        out.status
    );
    assert!(
        stdout.contains("test result: ok. 1 passed;"),
        "the child process ran no test named {test}"
    );
    true
}
