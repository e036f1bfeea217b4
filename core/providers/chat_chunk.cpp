#include "core/providers/chat_chunk.hpp"

#include <nlohmann/json.hpp>

#include <cstdint>
#include <vector>

namespace exai::core::openai {

namespace {

using nlohmann::json;

// The containers the reader is in; members of any other are skipped.
enum class Where : std::uint8_t { top, choices, choice, delta, message };

// The members ChatStream reads, one bit each (a repeated one declines: the
// general reading keeps the last, this one would see both).
enum Key : unsigned {
  other = 0,
  model = 1U << 0U,
  choices = 1U << 1U,
  error = 1U << 2U,
  usage = 1U << 3U,
  web_search = 1U << 4U,
  index = 1U << 5U,
  finish_reason = 1U << 6U,
  delta = 1U << 7U,
  message = 1U << 8U,
  content = 1U << 9U,
  reasoning = 1U << 10U,
  tool_calls = 1U << 11U,
};

Key
key_of(Where where, const std::string& name)
{
  switch (where) {
  case Where::top:
    return name == "model"        ? model
           : name == "choices"    ? choices
           : name == "error"      ? error
           : name == "usage"      ? usage
           : name == "web_search" ? web_search
                                  : other;
  case Where::choice:
    return name == "index"           ? index
           : name == "finish_reason" ? finish_reason
           : name == "usage"         ? usage
           : name == "delta"         ? delta
           : name == "message"       ? message
                                     : other;
  case Where::delta:
  case Where::message:
    return name == "content"             ? content
           : name == "reasoning_content" ? reasoning
           : name == "tool_calls"        ? tool_calls
                                         : other;
  case Where::choices:
    break;
  }
  return other;
}

// What one choice said, kept until its end: its index may come last, and a
// delta wins over a message whichever comes first.
struct Part {
  bool present = false; // and not null
  bool is_object = false;
  std::string content;
  std::size_t reasoning = 0;
};

struct Choice {
  bool counts = true; // index absent, null or 0
  std::string finish_reason;
  Part delta;
  Part message;
};

class Reader {
public:
  using number_integer_t = json::number_integer_t;
  using number_unsigned_t = json::number_unsigned_t;
  using number_float_t = json::number_float_t;
  using string_t = json::string_t;
  using binary_t = json::binary_t;

  explicit Reader(SimpleChunk& out)
      : out_(out)
  {
  }

  bool null() { return scalar(Value::null, nullptr); }
  bool boolean(bool /*value*/) { return scalar(Value::other, nullptr); }
  bool number_integer(number_integer_t value) { return integer(value == 0); }
  bool number_unsigned(number_unsigned_t value) { return integer(value == 0); }
  bool number_float(number_float_t /*value*/, const string_t& /*text*/)
  {
    return scalar(Value::other, nullptr);
  }
  bool string(string_t& value) { return scalar(Value::string, &value); }
  bool binary(binary_t& /*value*/) { return false; }

  bool start_object(std::size_t /*elements*/) { return open(true); }
  bool start_array(std::size_t /*elements*/) { return open(false); }
  bool end_object() { return close(); }
  bool end_array() { return close(); }

  bool key(string_t& name)
  {
    if (skip_ > 0) {
      return true;
    }
    key_ = key_of(stack_.back().where, name);
    if ((stack_.back().seen & key_) != 0U) {
      return false; // repeated
    }
    stack_.back().seen |= key_;
    return true;
  }

  bool parse_error(std::size_t /*position*/,
                   const std::string& /*last_token*/,
                   const nlohmann::detail::exception& /*error*/)
  {
    return false;
  }

  bool complete() const { return done_; }

private:
  enum class Value : std::uint8_t { null, string, integer, other };

  struct Level {
    Where where;
    unsigned seen = 0;
  };

  bool integer(bool zero)
  {
    if (skip_ == 0 && !stack_.empty() && stack_.back().where == Where::choice && key_ == index) {
      choice_.counts = choice_.counts && zero;
      return true;
    }
    return scalar(Value::integer, nullptr);
  }

  bool scalar(Value value, const std::string* text)
  {
    if (skip_ > 0) {
      return true;
    }
    if (stack_.empty()) {
      return false; // not an object
    }
    switch (stack_.back().where) {
    case Where::top:
      if (key_ == model && value == Value::string && !text->empty()) {
        out_.model = *text;
      }
      // An error, usage or search result that is not null: the general way.
      return value == Value::null || (key_ & (error | usage | web_search)) == 0U;
    case Where::choices:
      return true; // a choice that is not an object says nothing
    case Where::choice:
      return choice_scalar(value, text);
    case Where::delta:
    case Where::message:
      return part_scalar(value, text);
    }
    return false;
  }

  bool choice_scalar(Value value, const std::string* text)
  {
    switch (key_) {
    case index:
      choice_.counts = choice_.counts && value == Value::null;
      return true;
    case finish_reason:
      if (value == Value::string) {
        choice_.finish_reason = *text;
      }
      return true;
    case usage:
      return value == Value::null;
    case delta:
    case message:
      part(key_).present = value != Value::null;
      return true;
    default:
      return true;
    }
  }

  bool part_scalar(Value value, const std::string* text)
  {
    Part& into = part(stack_.back().where == Where::delta ? delta : message);
    if (key_ == tool_calls) {
      return value == Value::null;
    }
    if (value != Value::string) {
      return true;
    }
    if (key_ == content) {
      into.content = *text;
    } else if (key_ == reasoning) {
      into.reasoning = text->size();
    }
    return true;
  }

  bool open(bool object)
  {
    if (skip_ > 0) {
      ++skip_;
      return true;
    }
    if (stack_.empty()) {
      if (!object) {
        return false;
      }
      stack_.push_back({Where::top});
      return true;
    }
    switch (stack_.back().where) {
    case Where::top:
      if ((key_ & (error | usage | web_search)) != 0U) {
        return false;
      }
      if (key_ == choices && !object) {
        stack_.push_back({Where::choices});
        return true;
      }
      break;
    case Where::choices:
      if (object) {
        choice_ = Choice{};
        stack_.push_back({Where::choice});
        return true;
      }
      break;
    case Where::choice:
      if (key_ == usage) {
        return false;
      }
      if (key_ == index) {
        choice_.counts = false;
      } else if (key_ == delta || key_ == message) {
        part(key_).present = true;
        if (object) {
          part(key_).is_object = true;
          stack_.push_back({key_ == delta ? Where::delta : Where::message});
          return true;
        }
      }
      break;
    case Where::delta:
    case Where::message:
      if (key_ == tool_calls) {
        return false;
      }
      break;
    }
    skip_ = 1;
    return true;
  }

  bool close()
  {
    if (skip_ > 0) {
      --skip_;
      return true;
    }
    const Where where = stack_.back().where;
    stack_.pop_back();
    if (where == Where::choice) {
      commit();
    }
    if (stack_.empty()) {
      done_ = true;
    } else {
      key_ = other; // the container was the value of its key
    }
    return true;
  }

  void commit()
  {
    if (!choice_.counts) {
      return;
    }
    out_.saw_choice = true;
    if (!choice_.finish_reason.empty()) {
      out_.finish_reason = choice_.finish_reason;
    }
    const Part& used = choice_.delta.present ? choice_.delta : choice_.message;
    if (used.is_object) {
      out_.content += used.content;
      out_.reasoning_bytes += used.reasoning;
    }
  }

  // The choice's delta or message part (`key` is one of the two).
  Part& part(Key key) { return key == delta ? choice_.delta : choice_.message; }

  SimpleChunk& out_;
  std::vector<Level> stack_;
  int skip_ = 0; // > 0: inside a container nobody reads, this deep
  Key key_ = other;
  Choice choice_;
  bool done_ = false;
};

} // namespace

bool
read_simple_chunk(std::string_view data, SimpleChunk& out)
{
  out = SimpleChunk{};
  Reader reader(out);
  return json::sax_parse(data.begin(), data.end(), &reader) && reader.complete();
}

} // namespace exai::core::openai
