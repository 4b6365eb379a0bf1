"""crid as a built distribution: the wheel, installed the way an operator would."""
