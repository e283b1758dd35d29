#include "fastar/serve/session_registry.h"

#include <algorithm>

namespace fastar::serve {

SessionRegistry::SessionRegistry(int max_sessions, ServeLimits limits) : max_sessions_(max_sessions), limits_(limits) {}

std::shared_ptr<StreamSession> SessionRegistry::admit(std::weak_ptr<SessionOutput> output) {
  std::lock_guard lock(mutex_);
  if (stopped_ || static_cast<int>(sessions_.size()) >= max_sessions_) {
    ++refused_;
    return nullptr;
  }
  auto session = std::make_shared<StreamSession>(next_id_++, limits_, std::move(output), [this] { wake(); });
  sessions_.push_back(session);
  ++admitted_;
  return session;
}

void SessionRegistry::release(const std::shared_ptr<StreamSession>& session) {
  session->close();
  std::lock_guard lock(mutex_);
  auto it = std::find(sessions_.begin(), sessions_.end(), session);
  if (it == sessions_.end()) return;
  released_.push_back(*it);
  sessions_.erase(it);
  changed_.notify_all();
}

std::shared_ptr<StreamSession> SessionRegistry::wait_runnable(std::chrono::milliseconds timeout) {
  std::unique_lock lock(mutex_);
  std::shared_ptr<StreamSession> chosen;
  auto pick = [&] {
    if (stopped_ || !released_.empty()) return true;
    // Round robin: the first runnable session after the last served id, wrapping around.
    for (int pass = 0; pass < 2 && !chosen; ++pass)
      for (const auto& session : sessions_)
        if ((pass == 1 || session->id() > last_served_) && session->runnable()) {
          chosen = session;
          break;
        }
    return chosen != nullptr;
  };
  changed_.wait_for(lock, timeout, pick);
  if (chosen) last_served_ = chosen->id();
  return stopped_ ? nullptr : chosen;
}

std::vector<std::shared_ptr<StreamSession>> SessionRegistry::take_released() {
  std::lock_guard lock(mutex_);
  return std::exchange(released_, {});
}

void SessionRegistry::wake() {
  std::lock_guard lock(mutex_);
  changed_.notify_all();
}

void SessionRegistry::stop() {
  std::lock_guard lock(mutex_);
  stopped_ = true;
  changed_.notify_all();
}

int SessionRegistry::open_sessions() const {
  std::lock_guard lock(mutex_);
  return static_cast<int>(sessions_.size());
}

std::vector<std::shared_ptr<StreamSession>> SessionRegistry::sessions() const {
  std::lock_guard lock(mutex_);
  return sessions_;
}

nlohmann::json SessionRegistry::metrics() const {
  const std::vector<std::shared_ptr<StreamSession>> open = sessions();
  nlohmann::json list = nlohmann::json::array();
  for (const auto& session : open) list.push_back(session->metrics());
  std::lock_guard lock(mutex_);
  return {{"sessions", list}, {"open_sessions", open.size()}, {"max_sessions", max_sessions_},
          {"admitted", admitted_}, {"refused", refused_}};
}

}  // namespace fastar::serve
