#include "codec/json_value.h"

namespace agentfleet {

google::protobuf::Value ToValue(const Json& json) {
  google::protobuf::Value v;
  switch (json.type()) {
    case Json::value_t::null:
    case Json::value_t::discarded:
      v.set_null_value(google::protobuf::NULL_VALUE);
      break;
    case Json::value_t::boolean:
      v.set_bool_value(json.get<bool>());
      break;
    case Json::value_t::number_integer:
    case Json::value_t::number_unsigned:
    case Json::value_t::number_float:
      v.set_number_value(json.get<double>());
      break;
    case Json::value_t::string:
      v.set_string_value(json.get_ref<const std::string&>());
      break;
    case Json::value_t::array: {
      auto* list = v.mutable_list_value();
      for (const auto& e : json) *list->add_values() = ToValue(e);
      break;
    }
    case Json::value_t::object:
      *v.mutable_struct_value() = ToStruct(json);
      break;
    case Json::value_t::binary:
      v.set_null_value(google::protobuf::NULL_VALUE);
      break;
  }
  return v;
}

google::protobuf::Struct ToStruct(const Json& json) {
  google::protobuf::Struct s;
  if (!json.is_object()) {
    (*s.mutable_fields())["value"] = ToValue(json);
    return s;
  }
  for (const auto& [k, e] : json.items()) (*s.mutable_fields())[k] = ToValue(e);
  return s;
}

Json FromValue(const google::protobuf::Value& value) {
  switch (value.kind_case()) {
    case google::protobuf::Value::kBoolValue:
      return value.bool_value();
    case google::protobuf::Value::kNumberValue: {
      double d = value.number_value();
      // Whole numbers come back as integers so 3 prints as 3, not 3.0.
      // Range first: converting a double outside int64's range is undefined
      // (found by fuzz/json_fuzzer under UBSan).
      if (d > -9.007199254740992e15 && d < 9.007199254740992e15 &&
          d == static_cast<double>(static_cast<int64_t>(d))) {
        return static_cast<int64_t>(d);
      }
      return d;
    }
    case google::protobuf::Value::kStringValue:
      return value.string_value();
    case google::protobuf::Value::kListValue: {
      Json arr = Json::array();
      for (const auto& e : value.list_value().values()) arr.push_back(FromValue(e));
      return arr;
    }
    case google::protobuf::Value::kStructValue:
      return FromStruct(value.struct_value());
    default:
      return nullptr;
  }
}

Json FromStruct(const google::protobuf::Struct& value) {
  Json obj = Json::object();
  for (const auto& [k, e] : value.fields()) obj[k] = FromValue(e);
  return obj;
}

std::string CanonicalJson(const Json& json) {
  // nlohmann::json keeps object keys in a std::map, so dump() is already sorted.
  return json.dump(-1, ' ', false, Json::error_handler_t::replace);
}

}  // namespace agentfleet
