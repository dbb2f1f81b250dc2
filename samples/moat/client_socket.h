// The socket of an HTTP request's client, to notice that the client went away while a
// whole (not streamed) response is being generated. cpp-httplib 0.11 hands a handler
// the client's address but not its socket; this finds the process's socket whose peer
// and local ports are the request's (Linux: /proc/self/fd). httplib owns the socket and
// keeps it open while the handler runs.
#pragma once

#include <string>

namespace moat::cli {

// -1 when none matches (then nothing is watched).
int find_client_socket(const std::string& remote_addr, int remote_port, int local_port);

// True when the peer has closed its side or the connection failed (poll, no wait).
bool client_hung_up(int socket);

}  // namespace moat::cli
