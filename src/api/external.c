/* SPDX-License-Identifier: MIT */
/* placeholder: being written */
#include "scalemetrics/api.h"
