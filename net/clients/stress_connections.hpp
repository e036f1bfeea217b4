#pragma once

// The WebSocket connections of one `exai stress` load thread (SPEC §7): a
// pool opened up front plus short-lived ones for the disconnect and
// oversize scenarios, all in one epoll set (no thread per connection).
// Frames read here go to the thread's StressLedger; what it asks for in
// return (a cancel, a resend, a re-attach elsewhere) is sent from here, and a
// connection that breaks is reported to it.

#include "core/stress/stress_report.hpp"
#include "net/clients/daemon_session.hpp"
#include "net/clients/stress_ledger.hpp"

#include <Poco/Buffer.h>
#include <Poco/Net/WebSocket.h>

#include <chrono>
#include <cstddef>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

namespace exai::net {

// Opens a stress connection and says hello; throws DaemonRefused or
// DaemonUnreachable.
std::unique_ptr<Poco::Net::WebSocket> stress_connect(const DaemonAddress& target,
                                                     std::chrono::milliseconds timeout);

// What receive_frame() read.
enum class FrameKind { data, control, closed };

// Receives one frame into `buffer`, answering a ping with a pong: data,
// control (a ping or a pong) or closed. Throws Poco exceptions on I/O errors
// and timeouts.
FrameKind receive_frame(Poco::Net::WebSocket& ws, Poco::Buffer<char>& buffer, int& flags);

// Receives the next data frame into `buffer` (answering pings); false when
// the peer closed. Throws Poco exceptions on I/O errors and timeouts.
bool receive_data_frame(Poco::Net::WebSocket& ws, Poco::Buffer<char>& buffer, int& flags);

// Sends `text` as one text frame; throws Poco exceptions.
void send_text_frame(Poco::Net::WebSocket& ws, const std::string& text);

class StressConnections {
public:
  using Clock = std::chrono::steady_clock;

  struct Conn {
    std::unique_ptr<Poco::Net::WebSocket> ws;
    StressLedger::ConnId id = 0; // how the ledger knows it
    int fd = -1;
    bool open = true;
    bool ephemeral = false;
    core::stress::CallClass kind = core::stress::CallClass::normal; // of ephemeral ones
    Clock::time_point oversize_sent;
  };

  StressConnections(const DaemonAddress& target,
                    std::chrono::milliseconds io_timeout,
                    StressLedger& ledger);
  ~StressConnections();
  StressConnections(const StressConnections&) = delete;
  StressConnections& operator=(const StressConnections&) = delete;

  // Creates the epoll set and opens `count` pool connections; the ones that
  // fail are counted (refusals apart). Throws on an epoll failure.
  void open_pool(std::size_t count);
  // False when there is no epoll set to wait on.
  bool ready() const noexcept { return epoll_ != -1; }
  std::size_t pool_size() const noexcept { return pool_.size(); }

  // A connection for one disconnect or oversize scenario, or nullptr (a
  // refusal is counted, any other failure is a violation).
  Conn* open_ephemeral(core::stress::CallClass kind);
  // The next open pool connection, round robin; nullptr when none is left.
  Conn* next_pool_conn();

  // Sends `text`; on failure the connection is lost.
  bool send(Conn& conn, const std::string& text);
  // Sends the oversize frame: the daemon may close before reading it all,
  // which the read that follows tells, so a failed send is not a loss.
  void send_oversize(Conn& conn, const std::string& text);

  // Waits up to `tick` for frames and hands every one that arrived to the
  // ledger.
  void poll(std::chrono::milliseconds tick);
  // Oversize connections the daemon left open past io_timeout failed.
  void check_oversize(Clock::time_point now);
  // Closes every connection: the pool with a close frame, the rest abruptly.
  void close_all() noexcept;

  std::size_t connect_failures() const noexcept { return connect_failures_; }
  const std::string& first_connect_error() const noexcept { return first_connect_error_; }
  std::size_t refused() const noexcept { return refused_; }
  const std::string& refused_reason() const noexcept { return refused_reason_; }

private:
  void add(Conn& conn);
  void drop(Conn& conn) noexcept;
  void lost(Conn& conn, const std::string& reason);
  void on_readable(Conn& conn);
  void follow_up(Conn& conn, const StressLedger::Followup& next);
  void finish_oversize(Conn& conn, const std::string& outcome, const std::string& detail);
  void note_refused(const std::string& why);

  const DaemonAddress& target_;
  const std::chrono::milliseconds io_timeout_;
  StressLedger& ledger_;
  int epoll_ = -1;
  StressLedger::ConnId next_id_ = 0;
  std::vector<std::unique_ptr<Conn>> pool_;
  std::unordered_map<Conn*, std::unique_ptr<Conn>> ephemeral_;
  // Dropped ephemeral connections, freed after the current batch of events
  // (which may still name them).
  std::vector<std::unique_ptr<Conn>> graveyard_;
  std::size_t next_conn_ = 0;
  Poco::Buffer<char> buffer_{0}; // one receive buffer for all this thread's connections
  std::size_t connect_failures_ = 0;
  std::string first_connect_error_;
  std::size_t refused_ = 0;
  std::string refused_reason_;
};

} // namespace exai::net
