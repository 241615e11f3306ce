//! Diagnostics through `log` or `defmt`, whichever features are on (neither is required). Every
//! argument implements both `Display` and `defmt::Format`, so one format string serves both.

macro_rules! debug {
    ($($arg:tt)+) => {{
        #[cfg(feature = "log")]
        ::log::debug!($($arg)+);
        #[cfg(feature = "defmt")]
        ::defmt::debug!($($arg)+);
        #[cfg(not(any(feature = "log", feature = "defmt")))]
        {
            if false {
                let _ = ::core::format_args!($($arg)+);
            }
        }
    }};
}

pub(crate) use debug;
