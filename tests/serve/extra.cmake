# The serve suite's oracle tests (docs/serving.md): clients that are not ours against the
# mii-serve program on the demo model -- the official openai npm client (Node 20; the package is
# pinned and cached in .cache/npm) and curl -- with greedy answers compared to mii-generate's.
if(TARGET mii_test_serve AND TARGET mii-serve AND TARGET mii-generate)
  # Building the suite builds the programs the oracle tests start.
  add_dependencies(mii_test_serve mii-serve mii-generate)
  find_program(MII_NODE_PROGRAM node)
  find_program(MII_CURL_PROGRAM curl)
  if(MII_NODE_PROGRAM)
    add_test(NAME serve_openai_client
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/serve/openai_client_test.sh $<TARGET_FILE:mii-serve> $<TARGET_FILE:mii-generate>)
    set_tests_properties(serve_openai_client PROPERTIES LABELS host TIMEOUT 300)
  endif()
  if(MII_CURL_PROGRAM)
    add_test(NAME serve_curl
             COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/serve/curl_test.sh $<TARGET_FILE:mii-serve> $<TARGET_FILE:mii-generate>)
    set_tests_properties(serve_curl PROPERTIES LABELS host TIMEOUT 300)
  endif()
endif()
# mii-serve-overhead (the program) on the demo model with tiny sizes: the JSON's shape and counts.
if(TARGET mii_test_serve AND TARGET mii-serve-overhead)
  add_dependencies(mii_test_serve mii-serve-overhead)
  add_test(NAME serve_overhead
           COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/serve/overhead_test.sh $<TARGET_FILE:mii-serve-overhead>)
  set_tests_properties(serve_overhead PROPERTIES LABELS host TIMEOUT 120)
endif()
