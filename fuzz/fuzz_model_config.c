/* fuzz/fuzz_model_config.c: Hugging Face config.json (model/model_config.c): parsing then
 * validation of what parsed. */
#include "fuzz/fuzz_util.h"
#include "model/model_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    static ModelConfig cfg;
    if (model_config_load_hf(&cfg, fuzz_file(data, size)) == 0) (void)model_config_validate(&cfg);
    return 0;
}
