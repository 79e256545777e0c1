"""The translation table for the pack's node names, inputs and tooltips: English text (as the node schemas say it)
→ Simplified Chinese (``zh``) and Japanese (``ja``), the two non-English locales with the most ComfyUI users that
ComfyUI's own frontend ships. A string missing here falls back to English (the frontend shows the node
definition's own text) and ``python -m tests.pack_files --untranslated`` lists it. Input and output *names* are
keyed by their id, everything else by the English sentence, so one translation serves every node that reuses it.
"""

from __future__ import annotations

NAMES = {
    "zh": {
        "activity": "活动分析", "apply_to": "应用于", "bank": "样本库", "bank_t": "样本库时间步", "batch_size": "批量大小",
        "bins": "直方图分箱", "card": "卡片", "cell": "格子大小", "cfg": "CFG", "chart": "图表", "clip": "CLIP",
        "empty_prompt": "空提示词", "end_percent": "结束百分比", "examples": "示例", "grid": "网格",
        "heatmaps": "热力图", "height": "高度", "hookpoint": "钩子位置", "image": "图像", "images": "图像",
        "k": "k", "latent": "Latent", "lr": "学习率", "metrics": "指标", "mode": "模式", "model": "模型",
        "name": "名称", "negative": "负面提示词", "noise": "噪声", "objective": "目标", "page": "页面",
        "polish_steps": "打磨步数", "precision": "精度", "preset": "预设", "preview_every": "预览间隔",
        "prior": "先验", "prompts": "提示词", "rank_by": "排序依据", "ranking": "排名", "report": "报告",
        "robustness": "鲁棒性", "run1_images": "运行1图像", "run1_metrics": "运行1指标",
        "run2_images": "运行2图像", "run2_metrics": "运行2指标", "sae": "SAE", "sae_name": "SAE 名称",
        "sampler_name": "采样器", "scale": "倍数", "scheduler": "调度器", "seed": "种子", "seeds": "种子列表",
        "selection_t": "选择时间步", "size": "数量", "start_percent": "开始百分比", "steps": "步数",
        "strength": "强度", "timestep": "时间步", "timesteps": "时间步", "top": "前 N 个", "top_n": "前 N",
        "unit": "单元", "units": "单元", "vae": "VAE", "width": "宽度",
    },
    "ja": {
        "activity": "活性分析", "apply_to": "適用先", "bank": "サンプルバンク", "bank_t": "バンクのタイムステップ",
        "batch_size": "バッチサイズ", "bins": "ビン数", "card": "カード", "cell": "セルサイズ", "cfg": "CFG",
        "chart": "チャート", "clip": "CLIP", "empty_prompt": "空プロンプト", "end_percent": "終了割合",
        "examples": "例", "grid": "グリッド", "heatmaps": "ヒートマップ", "height": "高さ",
        "hookpoint": "フックポイント", "image": "画像", "images": "画像", "k": "k", "latent": "潜在",
        "lr": "学習率", "metrics": "指標", "mode": "モード", "model": "モデル", "name": "名前",
        "negative": "ネガティブプロンプト", "noise": "ノイズ", "objective": "目的関数", "page": "ページ",
        "polish_steps": "仕上げステップ", "precision": "精度", "preset": "プリセット", "preview_every": "プレビュー間隔",
        "prior": "事前分布", "prompts": "プロンプト", "rank_by": "順位付け", "ranking": "ランキング",
        "report": "レポート", "robustness": "頑健性", "run1_images": "実行1の画像", "run1_metrics": "実行1の指標",
        "run2_images": "実行2の画像", "run2_metrics": "実行2の指標", "sae": "SAE", "sae_name": "SAE 名",
        "sampler_name": "サンプラー", "scale": "倍率", "scheduler": "スケジューラー", "seed": "シード",
        "seeds": "シード一覧", "selection_t": "選択タイムステップ", "size": "サイズ", "start_percent": "開始割合",
        "steps": "ステップ数", "strength": "強度", "timestep": "タイムステップ", "timesteps": "タイムステップ",
        "top": "上位数", "top_n": "上位 N", "unit": "ユニット", "units": "ユニット", "vae": "VAE", "width": "幅",
    },
}

TEXT = {
    "zh": {
        # display names
        "LVO SAE Loader": "LVO SAE 加载器", "LVO Feature Hook": "LVO 特征钩子",
        "LVO Activity Analysis": "LVO 活动分析", "LVO Dataset Examples": "LVO 数据集示例",
        "LVO Steering": "LVO 引导", "LVO Steering Init (prior)": "LVO 引导初始化（先验）",
        "LVO Optimize": "LVO 优化", "LVO Feature Grid": "LVO 特征网格", "LVO Sample Bank": "LVO 样本库",
        "LVO Faithful": "LVO 忠实可视化", "LVO Feature Search": "LVO 特征搜索", "LVO Feature Page": "LVO 特征页",
        # categories
        "LVO": "LVO",
        # shared tooltips
        "The diffusion model.": "扩散模型。",
        "The diffusion model (SD1.x/SD2.x UNet).": "扩散模型（SD1.x/SD2.x UNet）。",
        "Sampler.": "采样器。", "Schedule.": "调度。", "Image width.": "图像宽度。", "Image height.": "图像高度。",
        "Sampling steps (reference 50).": "采样步数（参考值 50）。",
        "Decoded visualizations.": "解码后的可视化图像。",
        "Units to visualize.": "要可视化的单元。",
        "Which unit; -1 = the first of the selection.": "哪个单元；-1 = 选择中的第一个。",
        "Conditioning of the EMPTY prompt.": "空提示词的条件。",
        "Start of the window as a fraction of sampling.": "窗口起点（占采样过程的比例）。",
        "End of the window as a fraction of sampling.": "窗口终点（占采样过程的比例）。",
        "Multiplier of the dataset max. 0 = the reference's 500 (SAE) / 50 (raw).":
            "数据集最大值的倍数。0 = 参考值 500（SAE）/ 50（原始通道）。",
        "Fixed strength (or factor in scale mode). 0 = the unit's dataset max at each timestep × scale (needs an "
        "activity analysis).": "固定强度（缩放模式下为系数）。0 = 每个时间步该单元的数据集最大值 × 倍数（需要活动分析）。",
        "add: push along the feature's decoder direction (raw: add a constant to the channel). scale: multiply the "
        "feature's code by the strength, SAE error preserved.":
            "add：沿特征的解码器方向推动（原始通道：加常数）。scale：将特征编码乘以强度，保留 SAE 误差。",
        "active: steer where the unit's activity profile is > 0 (needs an analysis). window: steer between start "
        "and end percent.": "active：在单元活动曲线 > 0 处引导（需要分析）。window：在开始与结束百分比之间引导。",
        "UNet precision (autocast; the latent stays fp32).": "UNet 精度（自动混合精度；latent 保持 fp32）。",
    },
    "ja": {
        "LVO SAE Loader": "LVO SAE ローダー", "LVO Feature Hook": "LVO 特徴フック",
        "LVO Activity Analysis": "LVO 活性分析", "LVO Dataset Examples": "LVO データセット例",
        "LVO Steering": "LVO ステアリング", "LVO Steering Init (prior)": "LVO ステアリング初期化（事前分布）",
        "LVO Optimize": "LVO 最適化", "LVO Feature Grid": "LVO 特徴グリッド", "LVO Sample Bank": "LVO サンプルバンク",
        "LVO Faithful": "LVO 忠実な可視化", "LVO Feature Search": "LVO 特徴検索", "LVO Feature Page": "LVO 特徴ページ",
        "LVO": "LVO",
        "The diffusion model.": "拡散モデル。",
        "The diffusion model (SD1.x/SD2.x UNet).": "拡散モデル（SD1.x/SD2.x UNet）。",
        "Sampler.": "サンプラー。", "Schedule.": "スケジュール。", "Image width.": "画像の幅。", "Image height.": "画像の高さ。",
        "Sampling steps (reference 50).": "サンプリングステップ数（基準 50）。",
        "Decoded visualizations.": "デコードされた可視化画像。",
        "Units to visualize.": "可視化するユニット。",
        "Which unit; -1 = the first of the selection.": "対象ユニット。-1 = 選択の先頭。",
        "Conditioning of the EMPTY prompt.": "空プロンプトのコンディショニング。",
        "Start of the window as a fraction of sampling.": "ウィンドウの開始（サンプリング全体に対する割合）。",
        "End of the window as a fraction of sampling.": "ウィンドウの終了（サンプリング全体に対する割合）。",
        "Multiplier of the dataset max. 0 = the reference's 500 (SAE) / 50 (raw).":
            "データセット最大値の倍率。0 = 基準の 500（SAE）/ 50（生チャネル）。",
        "Fixed strength (or factor in scale mode). 0 = the unit's dataset max at each timestep × scale (needs an "
        "activity analysis).": "固定強度（scale モードでは係数）。0 = 各タイムステップでのユニットのデータセット最大値 × 倍率（活性分析が必要）。",
        "add: push along the feature's decoder direction (raw: add a constant to the channel). scale: multiply the "
        "feature's code by the strength, SAE error preserved.":
            "add：特徴のデコーダ方向に押す（生チャネル：定数を加算）。scale：特徴コードに強度を掛ける（SAE 誤差は保持）。",
        "active: steer where the unit's activity profile is > 0 (needs an analysis). window: steer between start "
        "and end percent.": "active：ユニットの活性プロファイルが 0 より大きい所で誘導（分析が必要）。window：開始と終了の割合の間で誘導。",
        "UNet precision (autocast; the latent stays fp32).": "UNet の精度（autocast。潜在は fp32 のまま）。",
    },
}
