//! A local emulator of the providers' batch HTTP APIs.
