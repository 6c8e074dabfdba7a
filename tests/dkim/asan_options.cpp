// Under AddressSanitizer: unwind the full stack at every malloc in the DKIM tests, so
// LeakSanitizer sees libopendkim's frames and tests/sanitizers/lsan.supp can suppress
// the key it leaks inside dkim_privkey_load() (the fast unwinder stops at libcrypto,
// which is built without frame pointers). Unused in other builds.
extern "C" const char* __asan_default_options();
extern "C" const char* __asan_default_options() { return "fast_unwind_on_malloc=0"; }
