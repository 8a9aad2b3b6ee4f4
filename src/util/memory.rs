//! Giving back the code pages only start-up used.
//!
//! Starting touches code that never runs again: configuration, migrations,
//! the catalog's and the docs' parsers, the index build. The kernel maps
//! code around every page faulted in (fault-around, 64 KiB at a time), so
//! after start more than half of Paver's 25 MB of code is resident while
//! the idle server runs a small part of it: measured on the release
//! build, 19.1 MiB of the binary's pages against 8.6 MiB it touches in its
//! first idle minute. Once start-up has settled, `paver serve` asks the
//! kernel to reclaim the binary's read-only pages (`MADV_PAGEOUT`); what
//! is used again comes back on its next fault, from the page cache or the
//! disk. Only clean, file-backed pages are concerned: nothing is lost, and
//! the heap and relocated data are not touched.

/// Advises the kernel to reclaim this executable's read-only mappings;
/// returns how many bytes were advised (0 where this is not Linux).
pub fn give_back_startup_code() -> std::io::Result<usize> {
    #[cfg(target_os = "linux")]
    {
        let exe = std::fs::read_link("/proc/self/exe")?;
        let maps = std::fs::read_to_string("/proc/self/maps")?;
        let mut advised = 0;
        for (start, end) in own_read_only(&maps, &exe.to_string_lossy()) {
            let len = end - start;
            // SAFETY: the range is a whole mapping of this process, read
            // from its own maps; MADV_PAGEOUT only reclaims its pages
            // (clean and file-backed here), it never changes what they hold.
            let rc = unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_PAGEOUT) };
            if rc != 0 {
                return Err(std::io::Error::last_os_error());
            }
            advised += len;
        }
        Ok(advised)
    }
    #[cfg(not(target_os = "linux"))]
    Ok(0)
}

/// The (start, end) of the read-only (not writable) mappings of `exe` in a
/// `/proc/self/maps` listing.
fn own_read_only(maps: &str, exe: &str) -> Vec<(usize, usize)> {
    maps.lines()
        .filter_map(|line| {
            let mut f = line.split_whitespace();
            let range = f.next()?;
            let perms = f.next()?;
            let path = f.nth(3)?;
            if path != exe || perms.as_bytes().get(1) != Some(&b'-') {
                return None;
            }
            let (a, b) = range.split_once('-')?;
            Some((
                usize::from_str_radix(a, 16).ok()?,
                usize::from_str_radix(b, 16).ok()?,
            ))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_executables_read_only_mappings_are_chosen() {
        let maps = "\
55c2f80b2000-55c2f875e000 r--p 00000000 fe:00 5499484    /srv/paver
55c2f875e000-55c2f9f2c000 r-xp 006ab000 fe:00 5499484    /srv/paver
55c2fa0ee000-55c2fa0f9000 rw-p 02039000 fe:00 5499484    /srv/paver
55c2fa0f9000-55c2fa100000 rw-p 00000000 00:00 0
7fe166415000-7fe16641d000 r-xp 00000000 fe:00 10027120   /usr/lib/libc.so.6
7fe166500000-7fe166600000 r--p 00000000 fe:00 10027121   /srv/paver-old
";
        assert_eq!(
            own_read_only(maps, "/srv/paver"),
            [
                (0x55c2f80b2000, 0x55c2f875e000),
                (0x55c2f875e000, 0x55c2f9f2c000)
            ]
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn the_running_test_binary_gives_its_code_back_and_keeps_running() {
        let rss_file = || {
            std::fs::read_to_string("/proc/self/status")
                .unwrap()
                .lines()
                .find_map(|l| l.strip_prefix("RssFile:"))
                .and_then(|v| v.split_whitespace().next()?.parse::<u64>().ok())
                .unwrap()
        };
        let before = rss_file();
        let advised = give_back_startup_code().unwrap();
        let after = rss_file();
        assert!(advised > 0);
        assert!(
            after < before,
            "file-backed resident {before} → {after} KiB"
        );
    }
}
