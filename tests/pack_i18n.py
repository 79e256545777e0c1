"""The translation table for the pack's node names, inputs and tooltips: English text (as the node schemas say it)
→ Simplified Chinese (``zh``) and Japanese (``ja``), the two non-English locales with the most ComfyUI users that
ComfyUI's own frontend ships. A string missing here falls back to English (the frontend shows the node
definition's own text) and ``python -m tests.pack_files --untranslated`` lists it. Input and output *names* are
keyed by their id, everything else by the English sentence, so one translation serves every node that reuses it.
"""

from __future__ import annotations

NAMES = {
    "zh": {
        "labels": "标签表", "sheet": "图表页", "text": "文本", "activity": "活动分析", "apply_to": "应用于", "bank": "样本库", "bank_t": "样本库时间步", "batch_size": "批量大小",
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
        "labels": "ラベル表", "sheet": "シート", "text": "テキスト", "activity": "活性分析", "apply_to": "適用先", "bank": "サンプルバンク", "bank_t": "バンクのタイムステップ",
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
        # LVO Label Search, Feature Search's sheet, Feature Page's labels
        "Block the SAE reads (diffusers or LDM name); empty = the labels' block.": "SAE 读取的模块（diffusers 或 LDM 名称）；留空 = 标签表的模块。",
        "Finds the SAE features for a word: each feature's labels are the vocabulary phrases whose generations raise it most (made once per SAE by `python -m lvo_core label`), each scored by how well the feature detects that phrase's images on held-out seeds (AUROC; 0.5 = chance). Features whose labels match the text come first, best score first; the units feed LVO Faithful and the Feature Page.": "按词查找 SAE 特征：每个特征的标签是最能提升它的词表短语（每个 SAE 用 `python -m lvo_core label` 生成一次），每个标签按该特征在留出种子上识别该短语图像的能力打分（AUROC；0.5 = 随机）。标签与文本匹配的特征排在前面，分数高者优先；输出的单元可接 LVO 忠实可视化和特征页。",
        "How many features to hand on.": "输出多少个特征。",
        "JSON: each hit's unit, matching label, lift, normalised lift and detection score.": "JSON：每个结果的单元、匹配的标签、提升值、归一化提升值和检测分数。",
        "LVO Label Search": "LVO 标签搜索",
        "Label folder: a name under output/lvo_labels/ or the path that `python -m lvo_core label --out` wrote (holds labels.json).": "标签文件夹：output/lvo_labels/ 下的名称，或 `python -m lvo_core label --out` 写入的路径（包含 labels.json）。",
        "Label table (LVO Label Search): the unit's labels with their held-out detection scores.": "标签表（LVO 标签搜索）：该单元的标签及其留出检测分数。",
        "One labelled picture: per image its hits' heatmaps, captioned, with a colour bar and a legend.": "一张带标注的图：每张图像及其命中特征的热力图，附说明、色条和图例。",
        "The SAE that was labelled (a label table of another SAE is refused).": "被标注的 SAE（其他 SAE 的标签表会被拒绝）。",
        "The diffusion model the labels were made with.": "生成标签时使用的扩散模型。",
        "The features found, best first, for LVO nodes.": "找到的特征，最佳在前，供 LVO 节点使用。",
        "The label table, for the Feature Page.": "标签表，供特征页使用。",
        "The word or phrase to find, e.g. 'rose' or 'red'.": "要查找的词或短语，例如 'rose' 或 'red'。",
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
        # node descriptions and the remaining tooltips
        "'peaks' = {0} ∪ each unit's activity peaks (needs an activity analysis), or timesteps like '0, 500'.":
            "'peaks' = {0} ∪ 每个单元的活动峰值（需要活动分析），或如 '0, 500' 的时间步。",
        "A Sample Bank of this model and block.":
            "此模型与此模块的样本库。",
        "A pool of the model's own samples (empty prompt, no CFG, DDIM), built once and reused by every faithful visualization of this block: each unit starts from the pool image that drives it hardest. Named banks are saved under output/lvo_banks/ and resume if interrupted; a bank made with another model or SAE is refused.":
            "模型自身样本的池（空提示词、无 CFG、DDIM），只构建一次，此模块的每次忠实可视化都复用它：每个单元从最能激活它的池图像出发。命名的样本库保存在 output/lvo_banks/ 下，中断后可续跑；用其他模型或 SAE 生成的样本库会被拒绝。",
        "A unit is active when among the top N at a timestep (reference 20).":
            "单元在某时间步位于前 N 名时视为活跃（参考值 20）。",
        "Active latents per token (TopK). 0 = read it from the SAE's config.":
            "每个 token 的激活潜变量数（TopK）。0 = 从 SAE 配置读取。",
        "Activity Analysis: activity over timesteps, peaks, top dataset examples.":
            "活动分析：随时间步的活动、峰值、数据集最佳示例。",
        "Activity analysis of these units: active timesteps and dataset maxima.":
            "这些单元的活动分析：活跃时间步与数据集最大值。",
        "Activity analysis: active timesteps and dataset maxima.":
            "活动分析：活跃时间步与数据集最大值。",
        "Activity analysis: dataset max and peak per hit.":
            "活动分析：每个命中的数据集最大值与峰值。",
        "Activity analysis: dataset maxima for the ratio metric, peaks for 'peak'.":
            "活动分析：比值指标所用的数据集最大值，'peak' 所用的峰值。",
        "Activity analysis: peak timesteps and dataset maxima for the ratio metric.":
            "活动分析：峰值时间步与比值指标所用的数据集最大值。",
        "Activity of the selected units over timesteps, peaks marked.":
            "所选单元随时间步的活动，标出峰值。",
        "An Empty Latent Image: the size of the pool's samples.":
            "一个空 Latent 图像：决定池中样本的尺寸。",
        "An SAE file or folder under ComfyUI/models/sae (symlinks and extra_model_paths.yaml 'sae:' folders count). Get SAeUron from the hub repo bcywinski/SAeUron (SD1.4/1.5) into models/sae/SAeUron, or sdxl-unbox from surkovv/sdxl-unbox.":
            "ComfyUI/models/sae 下的 SAE 文件或文件夹（符号链接与 extra_model_paths.yaml 中的 'sae:' 文件夹也算）。可从 hub 仓库 bcywinski/SAeUron（SD1.4/1.5）获取 SAeUron 放到 models/sae/SAeUron，或从 surkovv/sdxl-unbox 获取 sdxl-unbox。",
        "Block and SAE (LVO Feature Hook); the page shows one of its units.":
            "模块与 SAE（LVO 特征钩子）；页面展示其中一个单元。",
        "Block and SAE to analyse; the chart shows these units.":
            "要分析的模块与 SAE；图表显示这些单元。",
        "Block and SAE.":
            "模块与 SAE。",
        "Block the SAE reads (diffusers or LDM name); empty = the SAE's own.":
            "SAE 读取的模块（diffusers 或 LDM 名称）；留空 = SAE 自己的模块。",
        "Block to hook, diffusers or ComfyUI/LDM name (up_blocks.1.attentions.1 = output_blocks.4.1). Empty: the SAE's own block, else up_blocks.1.attentions.1.":
            "要挂钩的模块，diffusers 或 ComfyUI/LDM 名称（up_blocks.1.attentions.1 = output_blocks.4.1）。留空：SAE 自己的模块，否则 up_blocks.1.attentions.1。",
        "Candidate images (e.g. Activity Analysis's generations).":
            "候选图像（例如活动分析生成的图像）。",
        "Chooses the units to study: SAE features (with an SAE) or raw channels (without) of one UNet block. Checks that the SAE fits the block and every index is in range before anything runs.":
            "选择要研究的单元：某个 UNet 模块的 SAE 特征（连接 SAE 时）或原始通道（不连接时）。运行前检查 SAE 与模块匹配、每个索引都在范围内。",
        "Conditioning for the UNet pass (empty prompt).":
            "UNet 前向所用的条件（空提示词）。",
        "Conditioning of the EMPTY prompt (CLIP Text Encode with no text), as the reference protocol prescribes.":
            "空提示词的条件（不含文本的 CLIP 文本编码），按参考协议的要求。",
        "Conditioning of the EMPTY prompt (CLIP Text Encode with no text): LVO runs the UNet unconditioned, as the paper.":
            "空提示词的条件（不含文本的 CLIP 文本编码）：LVO 以无条件方式运行 UNet，与论文一致。",
        "Conditioning of the EMPTY prompt (features are read unconditioned, as LVO reads them).":
            "空提示词的条件（特征以无条件方式读取，与 LVO 一致）。",
        "Conditioning of the EMPTY prompt (for bank scores).":
            "空提示词的条件（用于样本库评分）。",
        "Conditioning of the EMPTY prompt: the pool is sampled unconditionally.":
            "空提示词的条件：池以无条件方式采样。",
        "DDIM steps per sample (25).":
            "每个样本的 DDIM 步数（25）。",
        "Decodes the bank's top images.":
            "解码样本库中的最佳图像。",
        "Decodes the generated images.":
            "解码生成的图像。",
        "Decodes the optimized latents.":
            "解码优化后的 latent。",
        "Decodes the visualizations.":
            "解码可视化结果。",
        "Each image, then each hit's heatmap over it.":
            "每张图像，然后是每个命中在其上的热力图。",
        "Encodes the image into the model's latent space.":
            "把图像编码到模型的 latent 空间。",
        "Encodes the images into latents.":
            "把图像编码为 latent。",
        "Encodes the prompts.":
            "编码提示词。",
        "Feature (or channel) indices: '12, 305' or a range '10-13'.":
            "特征（或通道）索引：'12, 305' 或范围 '10-13'。",
        "Folder name under output/lvo_banks/ to keep (and resume) the bank; empty = this run only.":
            "output/lvo_banks/ 下用于保存（并续跑）样本库的文件夹名；留空 = 仅本次运行。",
        "For a folder holding SAEs of several blocks: which one (e.g. up_blocks.1.attentions.1 or output_blocks.4.1). Empty: the only one.":
            "当文件夹中有多个模块的 SAE 时选择哪一个（例如 up_blocks.1.attentions.1 或 output_blocks.4.1）。留空：唯一的那个。",
        "For the default timestep.":
            "用于默认时间步。",
        "Generates one image per prompt and records, at every timestep, how often each unit is among the top-N most active (its activity profile), its mean and dataset maximum. Peaks and dataset maxima drive Steering, Steering Init and LVO Optimize.":
            "每个提示词生成一张图像，并在每个时间步记录每个单元位于前 N 名最活跃单元中的频率（活动曲线）、均值与数据集最大值。峰值和数据集最大值驱动引导、引导初始化与 LVO 优化。",
        "Guidance scale.":
            "引导系数。",
        "Histogram bins.":
            "直方图分箱数。",
        "How many examples to keep.":
            "保留多少个示例。",
        "How many features to list.":
            "列出多少个特征。",
        "How many top examples per source.":
            "每个来源显示多少个最佳示例。",
        "JSON: per image the hits with activation, lift, ratio, activity peak and bank examples.":
            "JSON：每张图像的命中项，含激活值、提升、比值、活动峰值与样本库示例。",
        "Jitter/rotation/zoom level (L1 = reference).":
            "抖动/旋转/缩放等级（L1 = 参考值）。",
        "LVO Optimize's metrics, for labels and one line per unit.":
            "LVO 优化的指标，用于标签和每个单元一行。",
        "LVO steps after the selection (30; 0 = the pool image as it is). Longer polishes raise activation and lose the concept.":
            "选出后的 LVO 步数（30；0 = 直接使用池图像）。打磨越久激活越高，但概念会丢失。",
        "Labels, one per image (one per line).":
            "标签，每张图像一个（每行一个）。",
        "Latent Visualization by Optimization: optimizes latents so that each unit fires maximally at each chosen timestep (schedule-matched noise, augmentations, penalties, preconditioned Adam), decodes them and reports metrics. Runs on a trainable copy of the UNet blocks up to the hook; the shared model is untouched. Interrupt keeps what is done: the finished images and metrics are shown in the node and saved to output/lvo_interrupted/.":
            "通过优化进行潜空间可视化：优化 latent，使每个单元在所选的每个时间步最大程度激活（与调度匹配的噪声、增强、惩罚项、预条件 Adam），解码并报告指标。在 UNet 到钩子为止各模块的可训练副本上运行；共享模型保持不变。中断会保留已完成部分：已完成的图像和指标显示在节点中，并保存到 output/lvo_interrupted/。",
        "The steered generations as a LATENT, one row per unit × seed (in that order), to preview with VAE Decode.":
            "引导生成的结果（LATENT），每个单元 × 种子一行（按此顺序），可用 VAE 解码预览。",
        "The same latents by (unit, seed): wire it to LVO Optimize's prior input.":
            "按（单元，种子）索引的同一批 latent：连接到 LVO 优化的先验输入。",
        "Lays visualizations side by side, one line per unit, each labelled with unit, timestep and ratio.":
            "将可视化结果并排排列，每个单元一行，并标注单元、时间步与比值。",
        "Learning rate (0.05).":
            "学习率（0.05）。",
        "Leave unconnected to study raw channels (the baseline).":
            "不连接时研究原始通道（基线）。",
        "Lists the SAE features an image drives most, with a heatmap of each over the image, and hands them on as units. With a Sample Bank the ranking is by lift over the model's own samples, which keeps always-on features out of the list (on the toy world the top hit shows the image's concept 92 % of the time, raw activation 40 %).":
            "列出图像最强烈激活的 SAE 特征，并给出每个特征在图像上的热力图，再作为单元传给后续节点。连接样本库时按相对模型自身样本的提升排序，可把常亮特征排除在外（在玩具世界中，排名第一的命中有 92 % 显示图像的概念，按原始激活排序为 40 %）。",
        "Live preview every N steps (0 = off).":
            "每 N 步实时预览（0 = 关闭）。",
        "Loads a sparse autoencoder from models/sae (sparsify/SAeUron folders and multi-hookpoint roots, SAELens, dictionary_learning, openai-style, bare safetensors). Pickles are read only with torch.load(weights_only=True).":
            "从 models/sae 加载稀疏自编码器（sparsify/SAeUron 文件夹与多钩子根目录、SAELens、dictionary_learning、openai 风格、纯 safetensors）。pickle 文件只用 torch.load(weights_only=True) 读取。",
        "Metrics per image as JSON (activation, ratio to dataset max, pool image, selection timestep).":
            "每张图像的指标 JSON（激活值、相对数据集最大值的比值、池图像、选择时间步）。",
        "Metrics per image as JSON: activation reached, prior activation, dataset max and ratio, selectivity, rank.":
            "每张图像的指标 JSON：达到的激活值、先验激活值、数据集最大值与比值、选择性、排名。",
        "Negative prompt for CFG.":
            "CFG 的负面提示词。",
        "One feature on one page, as Neuronpedia shows a language-model feature: its activity over the timesteps (peaks, dataset max) and top dataset examples from an Activity Analysis, its activation histogram, density and top images over a Sample Bank, and the visualizations and metrics of up to two runs (e.g. paper and faithful). Connect what you have.":
            "一个特征一页，类似 Neuronpedia 展示语言模型特征：来自活动分析的随时间步活动（峰值、数据集最大值）与最佳数据集示例，来自样本库的激活直方图、密度与最佳图像，以及最多两次运行（例如论文方法与忠实方法）的可视化和指标。有什么就连接什么。",
        "One generation per seed and unit (the reference: 1024, 1111, 4359, 3248, 1026).":
            "每个种子和单元生成一次（参考值：1024, 1111, 4359, 3248, 1026）。",
        "One picture per seed: the k-th seed of the list starts from the unit's k-th best pool image (the seed itself draws the polish's noise).":
            "每个种子一张图：列表中第 k 个种子从该单元第 k 好的池图像出发（种子本身决定打磨的噪声）。",
        "One prompt per line.":
            "每行一个提示词。",
        "One run per seed (noise and, for empty latents, the start).":
            "每个种子运行一次（噪声，以及空 latent 时的起点）。",
        "Optimization steps (100).":
            "优化步数（100）。",
        "Optimized latents, one per unit × timestep × seed.":
            "优化后的 latent，每个单元 × 时间步 × 种子一个。",
        "Pool image i is sampled from seed + i.":
            "池图像 i 由种子 + i 采样。",
        "Pool size (160). On the toy world best-of-40 shows the concept 72 % of the time, best-of-160 88 %.":
            "池大小（160）。在玩具世界中，40 选 1 有 72 % 显示概念，160 选 1 为 88 %。",
        "Ranking as JSON (index, score, prompt).":
            "排名 JSON（索引、分数、提示词）。",
        "Ranks images by how strongly a unit fires on them at a timestep (images encoded by the VAE and noised as the scheduler would) and overlays a heatmap of where it fires.":
            "按单元在某时间步对图像的激活强度排序（图像经 VAE 编码并按调度器加噪），并叠加显示激活位置的热力图。",
        "Reference settings: 'sae' (moment penalty) or 'raw' (TV penalty, gradient blur); auto picks by unit kind.":
            "参考设置：'sae'（矩惩罚）或 'raw'（TV 惩罚、梯度模糊）；auto 按单元类型选择。",
        "Returns a copy of the model that pushes the hooked block towards the chosen units while sampling; works with the stock KSampler and any sampler node. The input model is untouched.":
            "返回模型的副本，在采样时把挂钩模块推向所选单元；可配合原生 KSampler 及任意采样节点。输入模型保持不变。",
        "Rows optimized together; 0 = automatic (fits free memory). Out-of-memory halves it and goes on.":
            "一起优化的行数；0 = 自动（适配可用内存）。内存不足时减半后继续。",
        "Run 1: the images output of LVO Optimize or LVO Faithful.":
            "运行 1：LVO 优化或 LVO 忠实可视化的图像输出。",
        "Run 1: the metrics output of the same node (its rows for this unit are shown, with their images).":
            "运行 1：同一节点的指标输出（显示该单元的行及其图像）。",
        "Run 2: the images output of LVO Optimize or LVO Faithful.":
            "运行 2：LVO 优化或 LVO 忠实可视化的图像输出。",
        "Run 2: the metrics output of the same node (its rows for this unit are shown, with their images).":
            "运行 2：同一节点的指标输出（显示该单元的行及其图像）。",
        "SAE value to maximize: dense ReLU pre-activation (paper), pre-ReLU, or the sparse code.":
            "要最大化的 SAE 值：稠密 ReLU 前激活（论文）、ReLU 前值或稀疏编码。",
        "Sample Bank: histogram, density and top pool images.":
            "样本库：直方图、密度与最佳池图像。",
        "Sample Bank: the baseline for 'lift' and top examples.":
            "样本库：'lift' 的基线与最佳示例。",
        "Schedule-matched noise injection (ablation: off).":
            "与调度匹配的噪声注入（消融：关闭）。",
        "Seed of the first prompt; the next prompts count up.":
            "第一个提示词的种子；后续提示词依次递增。",
        "Seed of the noise.":
            "噪声的种子。",
        "Size of each tile in pixels.":
            "每个格子的像素大小。",
        "Start when no prior is wired: an Empty Latent Image (random N(0, I) per seed) or any latent.":
            "未连接先验时的起点：空 Latent 图像（每个种子随机 N(0, I)）或任意 latent。",
        "Start: Steering Init's prior (the reference protocol), one latent per unit × seed; wins over 'latent'.":
            "起点：引导初始化的先验（参考流程），每个单元 × 种子一个 latent；优先于 'latent'。",
        "Steer both CFG halves (as SAeUron) or only the conditional one.":
            "同时引导 CFG 的两半（如 SAeUron）或只引导条件部分。",
        "The Activity Analysis's generated images, to show the top dataset examples.":
            "活动分析生成的图像，用于显示最佳数据集示例。",
        "The LVO prior by the reference protocol: one generation per unit × seed with the empty prompt, cfg 1, 50 steps, the block steered towards that row's unit (strength = dataset max × 500 SAE / × 50 raw at active timesteps, or fixed). Uses ComfyUI's own sampling.":
            "按参考协议生成的 LVO 先验：每个单元 × 种子用空提示词生成一次，cfg 1，50 步，模块被引导向该行的单元（强度 = 活跃时间步上的数据集最大值 × 500（SAE）/ × 50（原始通道），或固定值）。使用 ComfyUI 自己的采样。",
        "The SAE whose features are searched.":
            "要搜索其特征的 SAE。",
        "The SAE, carrying the hookpoint it was trained on.":
            "SAE，附带其训练时的钩子位置。",
        "The analysis (profiles, peaks, dataset maxima, top examples).":
            "分析结果（活动曲线、峰值、数据集最大值、最佳示例）。",
        "The diffusion model (scores the bank if needed).":
            "扩散模型（需要时为样本库评分）。",
        "The diffusion model whose block is hooked.":
            "要挂钩其模块的扩散模型。",
        "The faithful recipe (the pack's default): per unit and seed, the sample-bank image that drives the unit hardest at the selection timestep, then a short LVO polish there. On the toy world, where the truth is known, its images show the unit's concept 88-92 % of the time (paper recipe: 0-1 %). Interrupt keeps what is done.":
            "忠实方法（本插件的默认）：对每个单元和种子，选取在选择时间步最能激活该单元的样本库图像，再在该处做简短的 LVO 打磨。在已知真相的玩具世界中，其图像有 88-92 % 显示该单元的概念（论文方法：0-1 %）。中断会保留已完成部分。",
        "The feature page as JSON (every number shown).":
            "特征页 JSON（显示的每个数字）。",
        "The features found on the first image, for LVO nodes.":
            "在第一张图像上找到的特征，供 LVO 节点使用。",
        "The generated images (for Dataset Examples).":
            "生成的图像（供数据集示例使用）。",
        "The image(s) to search; the units output comes from the first.":
            "要搜索的图像；单元输出来自第一张。",
        "The labelled atlas image.":
            "带标签的图集图像。",
        "The model to steer (it is cloned, never modified).":
            "要引导的模型（会被克隆，绝不修改）。",
        "The page as one labelled image, for saving.":
            "整页作为一张带标签的图像，便于保存。",
        "The prompts, one per line.":
            "提示词，每行一个。",
        "The same as one labelled grid.":
            "同样内容的带标签网格。",
        "The sample bank, for LVO Faithful.":
            "样本库，供 LVO 忠实可视化使用。",
        "The steered model (a clone; the hook exists only while it runs).":
            "被引导的模型（克隆；钩子只在其运行时存在）。",
        "The top images with heatmap overlays, best first.":
            "叠加热力图的最佳图像，按优劣排序。",
        "The validated unit selection (block, unit indices, SAE).":
            "经过校验的单元选择（模块、单元索引、SAE）。",
        "Timestep the bank is scored at for the histogram (200, as the faithful recipe selects).":
            "为直方图对样本库评分的时间步（200，与忠实方法的选择一致）。",
        "Timestep the features are read at (200, as the faithful recipe).":
            "读取特征的时间步（200，与忠实方法一致）。",
        "Timestep the pool is scored and polished at: a number (200, measured best) or 'peak' (each unit's activity peak; needs an analysis).":
            "对池评分和打磨的时间步：一个数字（200，实测最佳）或 'peak'（每个单元的活动峰值；需要分析）。",
        "Timestep; -1 = the unit's first activity peak (needs an analysis), else 500.":
            "时间步；-1 = 该单元的第一个活动峰值（需要分析），否则为 500。",
        "UNet precision (autocast; the latent stays fp32). auto: bf16 on CUDA, fp32 on CPU.":
            "UNet 精度（自动混合精度；latent 保持 fp32）。auto：CUDA 上为 bf16，CPU 上为 fp32。",
        "Units from LVO Feature Hook: the bank is scored at their block, with their SAE.":
            "来自 LVO 特征钩子的单元：样本库在其模块上、用其 SAE 评分。",
        "Units to make priors for.":
            "要生成先验的单元。",
        "Units to push (all of them at once).":
            "要推动的单元（同时全部）。",
        "Visualization latents, one per unit × seed.":
            "可视化 latent，每个单元 × 种子一个。",
        "Visualizations (e.g. from LVO Optimize).":
            "可视化结果（例如来自 LVO 优化）。",
        "lift over the bank's samples (auto with a bank), ratio to the dataset max (auto with an analysis), or raw activation.":
            "相对样本库样本的提升（有样本库时 auto 选它）、相对数据集最大值的比值（有分析时 auto 选它），或原始激活。",
    },
    "ja": {
        # LVO Label Search, Feature Search's sheet, Feature Page's labels
        "Block the SAE reads (diffusers or LDM name); empty = the labels' block.": "SAE が読むブロック（diffusers または LDM 名）。空欄 = ラベル表のブロック。",
        "Finds the SAE features for a word: each feature's labels are the vocabulary phrases whose generations raise it most (made once per SAE by `python -m lvo_core label`), each scored by how well the feature detects that phrase's images on held-out seeds (AUROC; 0.5 = chance). Features whose labels match the text come first, best score first; the units feed LVO Faithful and the Feature Page.": "単語から SAE 特徴を探します。各特徴のラベルは、その生成画像で特徴を最も強めた語彙フレーズです（SAE ごとに `python -m lvo_core label` で一度作成）。各ラベルは、保留シードの画像でその特徴がフレーズの画像をどれだけ見分けるかで採点されます（AUROC。0.5 = 偶然）。テキストに一致するラベルを持つ特徴が先に、スコアの高い順に並びます。出力ユニットは LVO Faithful と特徴ページにつなげます。",
        "How many features to hand on.": "出力する特徴の数。",
        "JSON: each hit's unit, matching label, lift, normalised lift and detection score.": "JSON：各ヒットのユニット、一致したラベル、リフト、正規化リフト、検出スコア。",
        "LVO Label Search": "LVO ラベル検索",
        "Label folder: a name under output/lvo_labels/ or the path that `python -m lvo_core label --out` wrote (holds labels.json).": "ラベルフォルダ：output/lvo_labels/ 内の名前、または `python -m lvo_core label --out` が書いたパス（labels.json を含む）。",
        "Label table (LVO Label Search): the unit's labels with their held-out detection scores.": "ラベル表（LVO ラベル検索）：ユニットのラベルと保留データでの検出スコア。",
        "One labelled picture: per image its hits' heatmaps, captioned, with a colour bar and a legend.": "注釈付きの一枚絵：画像ごとにヒットしたヒートマップ、キャプション、カラーバー、凡例付き。",
        "The SAE that was labelled (a label table of another SAE is refused).": "ラベル付けした SAE（別の SAE のラベル表は拒否されます）。",
        "The diffusion model the labels were made with.": "ラベル作成に使った拡散モデル。",
        "The features found, best first, for LVO nodes.": "見つかった特徴（良い順）。LVO ノード用。",
        "The label table, for the Feature Page.": "ラベル表。特徴ページ用。",
        "The word or phrase to find, e.g. 'rose' or 'red'.": "探す単語やフレーズ。例：'rose'、'red'。",
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
        # node descriptions and the remaining tooltips
        "'peaks' = {0} ∪ each unit's activity peaks (needs an activity analysis), or timesteps like '0, 500'.":
            "'peaks' = {0} ∪ 各ユニットの活性ピーク（活性分析が必要）、または '0, 500' のようなタイムステップ。",
        "A Sample Bank of this model and block.":
            "このモデルとブロックのサンプルバンク。",
        "A pool of the model's own samples (empty prompt, no CFG, DDIM), built once and reused by every faithful visualization of this block: each unit starts from the pool image that drives it hardest. Named banks are saved under output/lvo_banks/ and resume if interrupted; a bank made with another model or SAE is refused.":
            "モデル自身のサンプルのプール（空プロンプト、CFG なし、DDIM）。一度だけ作り、このブロックの忠実な可視化すべてで再利用します。各ユニットは自分を最も強く発火させるプール画像から始めます。名前付きバンクは output/lvo_banks/ に保存され、中断しても再開できます。別のモデルや SAE で作ったバンクは拒否されます。",
        "A unit is active when among the top N at a timestep (reference 20).":
            "あるタイムステップで上位 N に入るとユニットは活性とみなされます（基準 20）。",
        "Active latents per token (TopK). 0 = read it from the SAE's config.":
            "トークンあたりの活性潜在数（TopK）。0 = SAE の設定から読む。",
        "Activity Analysis: activity over timesteps, peaks, top dataset examples.":
            "活性分析：タイムステップごとの活性、ピーク、上位のデータセット例。",
        "Activity analysis of these units: active timesteps and dataset maxima.":
            "これらのユニットの活性分析：活性なタイムステップとデータセット最大値。",
        "Activity analysis: active timesteps and dataset maxima.":
            "活性分析：活性なタイムステップとデータセット最大値。",
        "Activity analysis: dataset max and peak per hit.":
            "活性分析：ヒットごとのデータセット最大値とピーク。",
        "Activity analysis: dataset maxima for the ratio metric, peaks for 'peak'.":
            "活性分析：比率指標のデータセット最大値、'peak' のためのピーク。",
        "Activity analysis: peak timesteps and dataset maxima for the ratio metric.":
            "活性分析：ピークのタイムステップと比率指標のデータセット最大値。",
        "Activity of the selected units over timesteps, peaks marked.":
            "選択したユニットのタイムステップごとの活性（ピークに印）。",
        "An Empty Latent Image: the size of the pool's samples.":
            "空の潜在画像：プールのサンプルのサイズ。",
        "An SAE file or folder under ComfyUI/models/sae (symlinks and extra_model_paths.yaml 'sae:' folders count). Get SAeUron from the hub repo bcywinski/SAeUron (SD1.4/1.5) into models/sae/SAeUron, or sdxl-unbox from surkovv/sdxl-unbox.":
            "ComfyUI/models/sae にある SAE のファイルまたはフォルダ（シンボリックリンクや extra_model_paths.yaml の 'sae:' フォルダも可）。SAeUron はハブのリポジトリ bcywinski/SAeUron（SD1.4/1.5）から models/sae/SAeUron へ、sdxl-unbox は surkovv/sdxl-unbox から入手します。",
        "Block and SAE (LVO Feature Hook); the page shows one of its units.":
            "ブロックと SAE（LVO 特徴フック）。ページはそのうち 1 ユニットを表示します。",
        "Block and SAE to analyse; the chart shows these units.":
            "分析するブロックと SAE。チャートはこれらのユニットを表示します。",
        "Block and SAE.":
            "ブロックと SAE。",
        "Block the SAE reads (diffusers or LDM name); empty = the SAE's own.":
            "SAE が読むブロック（diffusers または LDM 名）。空 = SAE 自身のブロック。",
        "Block to hook, diffusers or ComfyUI/LDM name (up_blocks.1.attentions.1 = output_blocks.4.1). Empty: the SAE's own block, else up_blocks.1.attentions.1.":
            "フックするブロック。diffusers または ComfyUI/LDM 名（up_blocks.1.attentions.1 = output_blocks.4.1）。空：SAE 自身のブロック、なければ up_blocks.1.attentions.1。",
        "Candidate images (e.g. Activity Analysis's generations).":
            "候補画像（例：活性分析の生成画像）。",
        "Chooses the units to study: SAE features (with an SAE) or raw channels (without) of one UNet block. Checks that the SAE fits the block and every index is in range before anything runs.":
            "調べるユニットを選びます：1 つの UNet ブロックの SAE 特徴（SAE あり）または生チャネル（SAE なし）。実行前に SAE がブロックに合い、全インデックスが範囲内か確認します。",
        "Conditioning for the UNet pass (empty prompt).":
            "UNet パス用のコンディショニング（空プロンプト）。",
        "Conditioning of the EMPTY prompt (CLIP Text Encode with no text), as the reference protocol prescribes.":
            "空プロンプトのコンディショニング（テキストなしの CLIP Text Encode）。基準プロトコルの指定どおり。",
        "Conditioning of the EMPTY prompt (CLIP Text Encode with no text): LVO runs the UNet unconditioned, as the paper.":
            "空プロンプトのコンディショニング（テキストなしの CLIP Text Encode）：論文どおり LVO は UNet を無条件で実行します。",
        "Conditioning of the EMPTY prompt (features are read unconditioned, as LVO reads them).":
            "空プロンプトのコンディショニング（LVO と同じく特徴は無条件で読みます）。",
        "Conditioning of the EMPTY prompt (for bank scores).":
            "空プロンプトのコンディショニング（バンクのスコア用）。",
        "Conditioning of the EMPTY prompt: the pool is sampled unconditionally.":
            "空プロンプトのコンディショニング：プールは無条件でサンプリングされます。",
        "DDIM steps per sample (25).":
            "サンプルあたりの DDIM ステップ数（25）。",
        "Decodes the bank's top images.":
            "バンクの上位画像をデコードします。",
        "Decodes the generated images.":
            "生成画像をデコードします。",
        "Decodes the optimized latents.":
            "最適化した潜在をデコードします。",
        "Decodes the visualizations.":
            "可視化をデコードします。",
        "Each image, then each hit's heatmap over it.":
            "各画像と、その上に重ねた各ヒットのヒートマップ。",
        "Encodes the image into the model's latent space.":
            "画像をモデルの潜在空間にエンコードします。",
        "Encodes the images into latents.":
            "画像を潜在にエンコードします。",
        "Encodes the prompts.":
            "プロンプトをエンコードします。",
        "Feature (or channel) indices: '12, 305' or a range '10-13'.":
            "特徴（またはチャネル）のインデックス：'12, 305' または範囲 '10-13'。",
        "Folder name under output/lvo_banks/ to keep (and resume) the bank; empty = this run only.":
            "バンクを保存（再開）する output/lvo_banks/ 下のフォルダ名。空 = この実行のみ。",
        "For a folder holding SAEs of several blocks: which one (e.g. up_blocks.1.attentions.1 or output_blocks.4.1). Empty: the only one.":
            "複数ブロックの SAE を含むフォルダでどれを使うか（例：up_blocks.1.attentions.1 や output_blocks.4.1）。空：唯一のもの。",
        "For the default timestep.":
            "既定のタイムステップ用。",
        "Generates one image per prompt and records, at every timestep, how often each unit is among the top-N most active (its activity profile), its mean and dataset maximum. Peaks and dataset maxima drive Steering, Steering Init and LVO Optimize.":
            "プロンプトごとに 1 枚生成し、各タイムステップで各ユニットが上位 N の最活性に入る頻度（活性プロファイル）、平均、データセット最大値を記録します。ピークとデータセット最大値がステアリング、ステアリング初期化、LVO 最適化を動かします。",
        "Guidance scale.":
            "ガイダンススケール。",
        "Histogram bins.":
            "ヒストグラムのビン数。",
        "How many examples to keep.":
            "残す例の数。",
        "How many features to list.":
            "一覧にする特徴の数。",
        "How many top examples per source.":
            "ソースごとの上位例の数。",
        "JSON: per image the hits with activation, lift, ratio, activity peak and bank examples.":
            "JSON：画像ごとのヒット（活性、リフト、比率、活性ピーク、バンク例）。",
        "Jitter/rotation/zoom level (L1 = reference).":
            "ジッター/回転/ズームの強さ（L1 = 基準）。",
        "LVO Optimize's metrics, for labels and one line per unit.":
            "LVO 最適化の指標（ラベルとユニットごとの行に使用）。",
        "LVO steps after the selection (30; 0 = the pool image as it is). Longer polishes raise activation and lose the concept.":
            "選択後の LVO ステップ数（30。0 = プール画像そのまま）。長く仕上げると活性は上がり、概念は失われます。",
        "Labels, one per image (one per line).":
            "ラベル（画像ごとに 1 行）。",
        "Latent Visualization by Optimization: optimizes latents so that each unit fires maximally at each chosen timestep (schedule-matched noise, augmentations, penalties, preconditioned Adam), decodes them and reports metrics. Runs on a trainable copy of the UNet blocks up to the hook; the shared model is untouched. Interrupt keeps what is done: the finished images and metrics are shown in the node and saved to output/lvo_interrupted/.":
            "最適化による潜在可視化：各ユニットが選んだ各タイムステップで最大に発火するよう潜在を最適化し（スケジュールに合わせたノイズ、拡張、ペナルティ、前処理付き Adam）、デコードして指標を報告します。フックまでの UNet ブロックの学習可能なコピーで動き、共有モデルは変更しません。中断しても完了分は残り、画像と指標はノードに表示され output/lvo_interrupted/ に保存されます。",
        "The steered generations as a LATENT, one row per unit × seed (in that order), to preview with VAE Decode.":
            "ステアリングした生成結果の LATENT（ユニット × シードごとに 1 行、この順）。VAE デコードでプレビューできます。",
        "The same latents by (unit, seed): wire it to LVO Optimize's prior input.":
            "同じ潜在を（ユニット、シード）で引けるもの。LVO 最適化の prior 入力につなぎます。",
        "Lays visualizations side by side, one line per unit, each labelled with unit, timestep and ratio.":
            "可視化を並べ、ユニットごとに 1 行、ユニット・タイムステップ・比率のラベル付きで表示します。",
        "Learning rate (0.05).":
            "学習率（0.05）。",
        "Leave unconnected to study raw channels (the baseline).":
            "未接続なら生チャネルを調べます（ベースライン）。",
        "Lists the SAE features an image drives most, with a heatmap of each over the image, and hands them on as units. With a Sample Bank the ranking is by lift over the model's own samples, which keeps always-on features out of the list (on the toy world the top hit shows the image's concept 92 % of the time, raw activation 40 %).":
            "画像が最も強く発火させる SAE 特徴を、画像上のヒートマップ付きで一覧にし、ユニットとして渡します。サンプルバンクがあるとモデル自身のサンプルに対するリフトで順位付けし、常時オンの特徴を除外します（トイワールドでは 1 位のヒットが画像の概念を示すのは 92 %、生の活性順では 40 %）。",
        "Live preview every N steps (0 = off).":
            "N ステップごとのライブプレビュー（0 = オフ）。",
        "Loads a sparse autoencoder from models/sae (sparsify/SAeUron folders and multi-hookpoint roots, SAELens, dictionary_learning, openai-style, bare safetensors). Pickles are read only with torch.load(weights_only=True).":
            "models/sae からスパースオートエンコーダーを読み込みます（sparsify/SAeUron フォルダと複数フックのルート、SAELens、dictionary_learning、openai 形式、素の safetensors）。pickle は torch.load(weights_only=True) でのみ読みます。",
        "Metrics per image as JSON (activation, ratio to dataset max, pool image, selection timestep).":
            "画像ごとの指標 JSON（活性、データセット最大値との比、プール画像、選択タイムステップ）。",
        "Metrics per image as JSON: activation reached, prior activation, dataset max and ratio, selectivity, rank.":
            "画像ごとの指標 JSON：到達した活性、事前分布の活性、データセット最大値と比率、選択性、順位。",
        "Negative prompt for CFG.":
            "CFG 用のネガティブプロンプト。",
        "One feature on one page, as Neuronpedia shows a language-model feature: its activity over the timesteps (peaks, dataset max) and top dataset examples from an Activity Analysis, its activation histogram, density and top images over a Sample Bank, and the visualizations and metrics of up to two runs (e.g. paper and faithful). Connect what you have.":
            "1 つの特徴を 1 ページに。Neuronpedia が言語モデルの特徴を示すように、活性分析からのタイムステップごとの活性（ピーク、データセット最大値）と上位データセット例、サンプルバンクからの活性ヒストグラム・密度・上位画像、最大 2 回の実行（例：論文法と忠実法）の可視化と指標を表示します。あるものを接続してください。",
        "One generation per seed and unit (the reference: 1024, 1111, 4359, 3248, 1026).":
            "シードとユニットごとに 1 回生成（基準：1024, 1111, 4359, 3248, 1026）。",
        "One picture per seed: the k-th seed of the list starts from the unit's k-th best pool image (the seed itself draws the polish's noise).":
            "シードごとに 1 枚：リストの k 番目のシードはユニットの k 番目に良いプール画像から始まります（シード自体は仕上げのノイズを決めます）。",
        "One prompt per line.":
            "1 行に 1 プロンプト。",
        "One run per seed (noise and, for empty latents, the start).":
            "シードごとに 1 回実行（ノイズ、空の潜在なら開始点も）。",
        "Optimization steps (100).":
            "最適化ステップ数（100）。",
        "Optimized latents, one per unit × timestep × seed.":
            "最適化した潜在（ユニット × タイムステップ × シードごとに 1 つ）。",
        "Pool image i is sampled from seed + i.":
            "プール画像 i はシード + i からサンプリングされます。",
        "Pool size (160). On the toy world best-of-40 shows the concept 72 % of the time, best-of-160 88 %.":
            "プールのサイズ（160）。トイワールドでは 40 枚中の最良が概念を示すのは 72 %、160 枚中では 88 %。",
        "Ranking as JSON (index, score, prompt).":
            "ランキング JSON（インデックス、スコア、プロンプト）。",
        "Ranks images by how strongly a unit fires on them at a timestep (images encoded by the VAE and noised as the scheduler would) and overlays a heatmap of where it fires.":
            "あるタイムステップでユニットが画像にどれだけ強く発火するかで画像を順位付けし（画像は VAE でエンコードしスケジューラどおりノイズを加える）、発火箇所のヒートマップを重ねます。",
        "Reference settings: 'sae' (moment penalty) or 'raw' (TV penalty, gradient blur); auto picks by unit kind.":
            "基準設定：'sae'（モーメントペナルティ）または 'raw'（TV ペナルティ、勾配ぼかし）。auto はユニットの種類で選びます。",
        "Returns a copy of the model that pushes the hooked block towards the chosen units while sampling; works with the stock KSampler and any sampler node. The input model is untouched.":
            "サンプリング中にフックしたブロックを選んだユニットへ押すモデルのコピーを返します。標準の KSampler や任意のサンプラーノードで使えます。入力モデルは変更しません。",
        "Rows optimized together; 0 = automatic (fits free memory). Out-of-memory halves it and goes on.":
            "まとめて最適化する行数。0 = 自動（空きメモリに合わせる）。メモリ不足なら半分にして続行します。",
        "Run 1: the images output of LVO Optimize or LVO Faithful.":
            "実行 1：LVO 最適化または LVO 忠実な可視化の画像出力。",
        "Run 1: the metrics output of the same node (its rows for this unit are shown, with their images).":
            "実行 1：同じノードの指標出力（このユニットの行を画像と一緒に表示）。",
        "Run 2: the images output of LVO Optimize or LVO Faithful.":
            "実行 2：LVO 最適化または LVO 忠実な可視化の画像出力。",
        "Run 2: the metrics output of the same node (its rows for this unit are shown, with their images).":
            "実行 2：同じノードの指標出力（このユニットの行を画像と一緒に表示）。",
        "SAE value to maximize: dense ReLU pre-activation (paper), pre-ReLU, or the sparse code.":
            "最大化する SAE の値：密な ReLU 前活性（論文）、ReLU 前、またはスパースコード。",
        "Sample Bank: histogram, density and top pool images.":
            "サンプルバンク：ヒストグラム、密度、上位のプール画像。",
        "Sample Bank: the baseline for 'lift' and top examples.":
            "サンプルバンク：'lift' のベースラインと上位例。",
        "Schedule-matched noise injection (ablation: off).":
            "スケジュールに合わせたノイズ注入（アブレーション：オフ）。",
        "Seed of the first prompt; the next prompts count up.":
            "最初のプロンプトのシード。以降のプロンプトは 1 ずつ増えます。",
        "Seed of the noise.":
            "ノイズのシード。",
        "Size of each tile in pixels.":
            "各タイルのピクセルサイズ。",
        "Start when no prior is wired: an Empty Latent Image (random N(0, I) per seed) or any latent.":
            "事前分布がつながっていないときの開始点：空の潜在画像（シードごとにランダムな N(0, I)）または任意の潜在。",
        "Start: Steering Init's prior (the reference protocol), one latent per unit × seed; wins over 'latent'.":
            "開始点：ステアリング初期化の事前分布（基準の手順）、ユニット × シードごとに 1 つの潜在。'latent' より優先されます。",
        "Steer both CFG halves (as SAeUron) or only the conditional one.":
            "CFG の両半分（SAeUron と同じ）か条件側だけを誘導します。",
        "The Activity Analysis's generated images, to show the top dataset examples.":
            "上位データセット例を表示するための、活性分析の生成画像。",
        "The LVO prior by the reference protocol: one generation per unit × seed with the empty prompt, cfg 1, 50 steps, the block steered towards that row's unit (strength = dataset max × 500 SAE / × 50 raw at active timesteps, or fixed). Uses ComfyUI's own sampling.":
            "基準プロトコルによる LVO の事前分布：ユニット × シードごとに空プロンプト、cfg 1、50 ステップで 1 回生成し、ブロックをその行のユニットへ誘導します（強度 = 活性なタイムステップでのデータセット最大値 × 500（SAE）/ × 50（生）、または固定）。ComfyUI 自身のサンプリングを使います。",
        "The SAE whose features are searched.":
            "特徴を検索する SAE。",
        "The SAE, carrying the hookpoint it was trained on.":
            "SAE（学習時のフックポイント付き）。",
        "The analysis (profiles, peaks, dataset maxima, top examples).":
            "分析結果（プロファイル、ピーク、データセット最大値、上位例）。",
        "The diffusion model (scores the bank if needed).":
            "拡散モデル（必要ならバンクをスコアリング）。",
        "The diffusion model whose block is hooked.":
            "ブロックをフックする拡散モデル。",
        "The faithful recipe (the pack's default): per unit and seed, the sample-bank image that drives the unit hardest at the selection timestep, then a short LVO polish there. On the toy world, where the truth is known, its images show the unit's concept 88-92 % of the time (paper recipe: 0-1 %). Interrupt keeps what is done.":
            "忠実なレシピ（このパックの既定）：ユニットとシードごとに、選択タイムステップでユニットを最も強く発火させるサンプルバンク画像を選び、そこで短く LVO で仕上げます。正解が分かっているトイワールドでは、画像がユニットの概念を示すのは 88-92 %（論文のレシピ：0-1 %）。中断しても完了分は残ります。",
        "The feature page as JSON (every number shown).":
            "特徴ページの JSON（表示されるすべての数値）。",
        "The features found on the first image, for LVO nodes.":
            "最初の画像で見つかった特徴（LVO ノード用）。",
        "The generated images (for Dataset Examples).":
            "生成画像（データセット例用）。",
        "The image(s) to search; the units output comes from the first.":
            "検索する画像。ユニット出力は最初の画像から。",
        "The labelled atlas image.":
            "ラベル付きのアトラス画像。",
        "The model to steer (it is cloned, never modified).":
            "誘導するモデル（複製され、元は変更しません）。",
        "The page as one labelled image, for saving.":
            "保存用に、ページを 1 枚のラベル付き画像にしたもの。",
        "The prompts, one per line.":
            "プロンプト（1 行に 1 つ）。",
        "The same as one labelled grid.":
            "同じ内容のラベル付きグリッド。",
        "The sample bank, for LVO Faithful.":
            "LVO 忠実な可視化のためのサンプルバンク。",
        "The steered model (a clone; the hook exists only while it runs).":
            "誘導されたモデル（複製。フックは実行中だけ存在）。",
        "The top images with heatmap overlays, best first.":
            "ヒートマップを重ねた上位画像（良い順）。",
        "The validated unit selection (block, unit indices, SAE).":
            "検証済みのユニット選択（ブロック、ユニット番号、SAE）。",
        "Timestep the bank is scored at for the histogram (200, as the faithful recipe selects).":
            "ヒストグラム用にバンクをスコアリングするタイムステップ（200。忠実なレシピの選択と同じ）。",
        "Timestep the features are read at (200, as the faithful recipe).":
            "特徴を読むタイムステップ（200。忠実なレシピと同じ）。",
        "Timestep the pool is scored and polished at: a number (200, measured best) or 'peak' (each unit's activity peak; needs an analysis).":
            "プールをスコアリングし仕上げるタイムステップ：数値（200、実測で最良）または 'peak'（各ユニットの活性ピーク。分析が必要）。",
        "Timestep; -1 = the unit's first activity peak (needs an analysis), else 500.":
            "タイムステップ。-1 = ユニットの最初の活性ピーク（分析が必要）、なければ 500。",
        "UNet precision (autocast; the latent stays fp32). auto: bf16 on CUDA, fp32 on CPU.":
            "UNet の精度（autocast。潜在は fp32 のまま）。auto：CUDA では bf16、CPU では fp32。",
        "Units from LVO Feature Hook: the bank is scored at their block, with their SAE.":
            "LVO 特徴フックからのユニット：バンクはそのブロックで、その SAE でスコアリングされます。",
        "Units to make priors for.":
            "事前分布を作るユニット。",
        "Units to push (all of them at once).":
            "押すユニット（すべて同時に）。",
        "Visualization latents, one per unit × seed.":
            "可視化の潜在（ユニット × シードごとに 1 つ）。",
        "Visualizations (e.g. from LVO Optimize).":
            "可視化（例：LVO 最適化から）。",
        "lift over the bank's samples (auto with a bank), ratio to the dataset max (auto with an analysis), or raw activation.":
            "バンクのサンプルに対するリフト（バンクがあれば auto）、データセット最大値との比（分析があれば auto）、または生の活性。",
    },
}
