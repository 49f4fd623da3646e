// json_writer.h: JSON text written straight into a string, without building a document first, for
// outputs that print many objects (tapcat -o har). Strings are escaped as RFC 8259 section 7
// requires; bytes that are not UTF-8 (RFC 3629) become U+FFFD, as nlohmann::json's dump does with
// error_handler_t::replace, so the text is always valid JSON.
//
// Thread-safety: a writer is used by one thread at a time; AppendJsonString is a free function.
#ifndef TAPKIT_FORMAT_JSON_WRITER_H_
#define TAPKIT_FORMAT_JSON_WRITER_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tapkit {

// Appends `s` as a JSON string, quotes included.
void AppendJsonString(std::string_view s, std::string* out);
// The same when `s` is all UTF-8; otherwise appends nothing and returns false (one pass where a
// caller would check IsUtf8 first, as for a body given as text or else in base64).
bool AppendJsonUtf8String(std::string_view s, std::string* out);

// Appends nanoseconds as a JSON number of milliseconds, exactly ("1.5", "2", "0.000001").
void AppendJsonMilliseconds(uint64_t ns, std::string* out);

// Commas and colons follow from the calls: Key before each member of an object, values in order.
// The caller pairs every Begin with its End.
class JsonWriter {
 public:
  explicit JsonWriter(std::string* out) : out_(out) {}
  void BeginObject() { Open('{'); }
  void EndObject() { Close('}'); }
  void BeginArray() { Open('['); }
  void EndArray() { Close(']'); }
  void Key(std::string_view key);
  void String(std::string_view s);
  void Int(int64_t v);
  void Milliseconds(uint64_t ns);  // AppendJsonMilliseconds
  void Bool(bool v);
  // A value already written as JSON text elsewhere (by another JsonWriter).
  void Raw(std::string_view json);
  // A string value when `s` is UTF-8 (AppendJsonUtf8String); false, and nothing written, if not.
  bool Utf8String(std::string_view s);
  // A member whose value is a string: Key then String.
  void Member(std::string_view key, std::string_view value) {
    Key(key);
    String(value);
  }

 private:
  void Value();  // the comma before an array element
  void Open(char c);
  void Close(char c);

  std::string* out_;
  // Per open container: whether it has a member yet, and whether it is an object.
  std::vector<std::pair<bool, bool>> stack_;
  bool after_key_ = false;
};

}  // namespace tapkit

#endif  // TAPKIT_FORMAT_JSON_WRITER_H_
