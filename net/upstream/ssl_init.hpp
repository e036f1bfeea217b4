#pragma once

namespace exai::net {

// Initialises Poco's SSL layer exactly once per process (thread-safe); call
// before creating any HTTPS session. Never deinitialised: it lives until exit.
void ensure_ssl_initialized();

} // namespace exai::net
