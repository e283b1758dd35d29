# Tests of the Python tools under tools/ (need only Python 3 + numpy).
# Included from tests/CMakeLists.txt; run with `ctest -L tools`.
if(Python3_Interpreter_FOUND)
  add_test(NAME tools.convert_forcing
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/test_convert_forcing.py)
  set_tests_properties(tools.convert_forcing PROPERTIES LABELS tools)
  # ARL² checkpoints: convert, then `fastar inspect` / `fastar generate --policy arl2` on the result.
  add_test(NAME tools.convert_arl2
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/test_convert_arl2.py $<TARGET_FILE:fastar>)
  set_tests_properties(tools.convert_arl2 PROPERTIES LABELS tools TIMEOUT 300)
  # The PyTorch world model (tools/world_model) against `fastar generate`; skipped (77) without torch.
  add_test(NAME tools.world_model_parity
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/test_world_model_parity.py $<TARGET_FILE:fastar>)
  set_tests_properties(tools.world_model_parity PROPERTIES LABELS tools SKIP_RETURN_CODE 77 TIMEOUT 300)
  # The ARL² hybrid world model (tools/world_model/hybrid.py) against `fastar generate --policy arl2`.
  add_test(NAME tools.world_model_arl2_parity
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/test_world_model_arl2_parity.py $<TARGET_FILE:fastar>)
  set_tests_properties(tools.world_model_arl2_parity PROPERTIES LABELS tools SKIP_RETURN_CODE 77 TIMEOUT 300)
endif()
if(Python3_Interpreter_FOUND)
  # Wan2.1's .pth parts (VAE, umT5) to safetensors; the fixtures are written with torch.save (skipped, 77, without torch).
  add_test(NAME tools.convert_wan_parts
           COMMAND ${Python3_EXECUTABLE} ${CMAKE_CURRENT_SOURCE_DIR}/tools/test_convert_wan_parts.py $<TARGET_FILE:fastar>)
  set_tests_properties(tools.convert_wan_parts PROPERTIES LABELS tools SKIP_RETURN_CODE 77 TIMEOUT 120)
endif()
