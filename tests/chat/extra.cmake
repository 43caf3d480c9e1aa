# The chat suite's checks beyond its Catch2 executable (tests/chat/):
#  - mii_test_chat runs mii-chat-template too (tool_test.cpp): its path is compiled in;
#  - chat_oracle compares mii with Python jinja2 configured as transformers
#    configures it (oracle_test.py), on the real templates tools/fetch-tokenizers.sh downloads and
#    on one small template per construct. jinja2 is Debian's python3-jinja2 (tools/install-deps.sh),
#    importable by /usr/bin/python3.
if(TARGET mii_test_chat AND TARGET mii-chat-template)
  target_compile_definitions(mii_test_chat PRIVATE MII_CHAT_TEMPLATE_TOOL="$<TARGET_FILE:mii-chat-template>")
  add_dependencies(mii_test_chat mii-chat-template)
  # oracle_test.py renders every case with jinja2, then runs mii_chat_oracle_runner once over all
  # of them (oracle/runner.cpp); `--tool` instead runs mii-chat-template per case (slower).
  add_executable(mii_chat_oracle_runner ${CMAKE_CURRENT_SOURCE_DIR}/chat/oracle/runner.cpp)
  target_link_libraries(mii_chat_oracle_runner PRIVATE mii::mii mii::simdjson)
  target_include_directories(mii_chat_oracle_runner PRIVATE ${PROJECT_SOURCE_DIR}/src)
  add_dependencies(mii_test_chat mii_chat_oracle_runner)
  add_test(NAME chat_oracle
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/chat/oracle_test.py
            --runner $<TARGET_FILE:mii_chat_oracle_runner> --cache ${PROJECT_SOURCE_DIR}/.cache/tokenizers)
  set_tests_properties(chat_oracle PROPERTIES FIXTURES_REQUIRED tokenizer_files LABELS host TIMEOUT 600)
endif()
