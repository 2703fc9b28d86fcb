"""Template grammars of the demo corpus: word lists plus ``{slot}`` templates for smart-home /
assistant commands, in Mandarin or English, ``demo`` (compact) or ``full`` (richer), each with
training templates and held-out templates for the ``unseen`` split. Mostly data tables.
"""
from __future__ import annotations

import bisect
import itertools
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from functools import cache

import numpy as np


LANGUAGES = ("zh", "en")
GRAMMARS = ("demo", "full")

_SLOT = re.compile(r"\{(\w+)\}")
_WEIGHT_CAP = 1000
_Parsed = tuple[tuple[str, ...], tuple[str, ...]]  # (literal pieces, slot names between them)


# --------------------------------------------------------------------------- numbers


_ZH_DIGITS = "零一二三四五六七八九"


def zh_number(n: int, liang: bool = False) -> str:
    """Chinese numeral for 0 <= n < 10000; ``liang`` says 两 for a leading 2 (两点, 两百)."""
    if not 0 <= n < 10000:
        raise ValueError(f"number out of range: {n}")
    if n < 10:
        return "两" if liang and n == 2 else _ZH_DIGITS[n]
    if n < 20:
        return "十" + (_ZH_DIGITS[n % 10] if n % 10 else "")
    words: list[str] = []
    pending_zero = False
    for value, unit in ((1000, "千"), (100, "百"), (10, "十"), (1, "")):
        digit = n // value % 10
        if digit == 0:
            pending_zero = bool(words)
            continue
        if pending_zero:
            words.append("零")
            pending_zero = False
        lead = not words and digit == 2 and liang and unit in ("千", "百")
        words.append(("两" if lead else _ZH_DIGITS[digit]) + unit)
    return "".join(words)


_EN_ONES = ("zero one two three four five six seven eight nine ten eleven twelve thirteen "
            "fourteen fifteen sixteen seventeen eighteen nineteen").split()
_EN_TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def en_number(n: int) -> str:
    """English words for 0 <= n < 1000, space separated (no hyphens): 'twenty one'."""
    if not 0 <= n < 1000:
        raise ValueError(f"number out of range: {n}")
    if n < 20:
        return _EN_ONES[n]
    if n < 100:
        return _EN_TENS[n // 10] + ("" if n % 10 == 0 else " " + _EN_ONES[n % 10])
    rest = n % 100
    return _EN_ONES[n // 100] + " hundred" + ("" if rest == 0 else " and " + en_number(rest))


# --------------------------------------------------------------------------- grammars


@dataclass(frozen=True)
class GrammarSpec:
    """Word lists (``slots``) and sentence ``templates``; ``{name}`` refers to a slot.

    ``held_out_templates`` are other sentence patterns over the same slots, spoken only by the
    ``unseen`` split: they show whether a model transcribes characters or recalls training sentences.
    """

    templates: tuple[str, ...]
    slots: Mapping[str, tuple[str, ...]]
    held_out_templates: tuple[str, ...] = ()

    def extended(self, templates: Sequence[str], slots: Mapping[str, Sequence[str]]) -> GrammarSpec:
        """A superset grammar: extra templates, and slot lists extended (or added)."""
        merged = {name: tuple(values) for name, values in self.slots.items()}
        for name, values in slots.items():
            merged[name] = merged.get(name, ()) + tuple(v for v in values if v not in merged.get(name, ()))
        return GrammarSpec(self.templates + tuple(templates), merged, self.held_out_templates)


def _zh_demo() -> GrammarSpec:
    return GrammarSpec(
        templates=(
            "{please}{switch}{room}{of}{device}",
            "{please}把{room}{of}{device}{switch}",
            "现在{switch}{room}{of}{device}",
            "{minutes}分钟后{switch}{device}",
            "{room}{of}{device}{state}了吗",
            "把{room}空调调到{temp}度",
            "{room}空调调到{temp}度",
            "空调温度调到{temp}度",
            "把{room}{of}{adjust}调{level}一点",
            "{hour}点把{adjust}调{level}一点",
            "{day}{period}{hour}点叫我起床",
            "{period}{hour}点{minute}叫我起床",
            "{day}{period}{hour}点提醒我{task}",
            "{minutes}分钟后提醒我{task}",
            "{minutes}分钟后叫我",
            "{city}{day}{weather}",
            "{day}{city}{weather}",
            "{city}{day}{period}{weather}",
            "现在{city}{weather}",
            "{city}{day}{period}几度",
            "{city}{day}{period}的温度是多少",
            "{please}给{person}{contact}",
            "{hour}点给{person}{contact}",
            "{day}{period}给{person}{contact}",
            "{please}播放{music}",
            "{play}{music}",
            "{day}{period}{play}{music}",
            "在{room}{play}{music}",
            "{minutes}分钟后播放{music}",
            "{room}现在几度",
            "现在几点了",
        ),
        held_out_templates=(
            "{day}{period}{hour}点{switch}{device}",
            "{please}把{device}{switch}",
            "{room}{of}{device}{switch}了吗",
            "{please}把{adjust}调{level}一点",
            "{minutes}分钟后把空调调到{temp}度",
            "{period}{hour}点{minute}提醒我{task}",
            "{day}{period}{city}{weather}",
            "{city}{period}几度",
            "{person}{day}{period}给我{contact}",
            "{day}{period}在{room}{play}{music}",
        ),
        slots={
            "please": ("", "请", "帮我"),
            "switch": ("打开", "关掉", "关上", "关闭"),
            "state": ("开", "关"),
            "room": ("客厅", "卧室", "厨房", "书房", "阳台"),
            "of": ("", "的"),
            "device": ("灯", "空调", "电视", "窗帘", "风扇"),
            "temp": tuple(zh_number(n) for n in range(16, 31)),
            "adjust": ("空调", "音量", "电视声音"),
            "level": ("大", "小", "高", "低"),
            "day": ("今天", "明天", "后天"),
            "period": ("早上", "上午", "中午", "下午", "晚上"),
            "hour": tuple(zh_number(n, liang=True) for n in range(1, 13)),
            "minute": ("半", "十分", "二十分", "三十分", "四十分", "五十分"),
            "minutes": tuple(zh_number(n, liang=True) for n in range(1, 31)),
            "task": ("开会", "吃药", "喝水", "买菜", "出门", "睡觉"),
            "city": ("北京", "上海", "广州", "深圳", "南京", "西安", "成都", "杭州"),
            "weather": ("天气怎么样", "会下雨吗", "会下雪吗", "冷不冷", "热不热"),
            "person": ("爸爸", "妈妈", "哥哥", "姐姐", "弟弟", "妹妹", "老师"),
            "contact": ("打电话", "发消息"),
            "play": ("我想听", "来一首", "放一首"),
            "music": ("流行歌", "轻音乐", "老歌", "儿歌", "新歌"),
        },
    )


def _zh_full() -> GrammarSpec:
    return _zh_demo().extended(
        templates=(
            "{room}的{device}{switch}一下",
            "把{room}的空调调到{mode}",
            "把灯调成{color}",
            "把{room}的灯亮度调到百分之{percent}",
            "电视换到{channel}频道",
            "{month}月{date}号{period}{hour}点{minute}提醒我{task}",
            "每天{period}{hour}点{minute}提醒我{task}",
            "设置一个{minutes}分钟的倒计时",
            "{hours}个小时后提醒我{task}",
            "{day}{city}的{air}怎么样",
            "{city}{day}需要带伞吗",
            "{city}这{span}会不会{sky}",
            "导航到{place}",
            "从这里到{place}要多久",
            "附近有没有{place}",
            "查一下{city}到{city}的{ticket}",
            "给{name}{contact}",
            "打电话给{name}",
            "{play}{singer}的{song}",
            "{player}",
            "把{item}加到购物清单",
            "提醒我{day}{period}买{item}",
            "购物清单里有什么",
            "{number}加{number}等于多少",
            "{number}乘以{digit}是多少",
            "讲个{story}",
            "今天是几月几号",
            "{month}月{date}号是星期几",
        ),
        slots={
            "switch": ("开启",),
            "room": ("餐厅", "儿童房", "洗手间", "客房", "车库", "走廊", "二楼", "地下室", "主卧", "次卧"),
            "device": ("台灯", "吊灯", "加湿器", "空气净化器", "扫地机器人", "热水器", "洗衣机",
                       "电饭煲", "地暖", "新风系统", "电暖气", "投影仪", "烤箱", "冰箱", "排气扇"),
            "mode": ("制冷模式", "制热模式", "睡眠模式", "自动模式", "节能模式", "除湿模式"),
            "color": ("红色", "蓝色", "绿色", "黄色", "紫色", "白色", "暖光", "冷光", "粉色", "橙色"),
            "percent": tuple(zh_number(n) for n in range(10, 101, 10)),
            "channel": tuple(zh_number(n) for n in range(1, 41)),
            "month": tuple(zh_number(n) for n in range(1, 13)),
            "date": tuple(zh_number(n) for n in range(1, 32)),
            "minute": ("整", "半", "一刻", "三刻") + tuple(zh_number(n) + "分" for n in range(5, 60, 5)),
            "hours": tuple(zh_number(n, liang=True) for n in range(1, 13)),
            "day": ("大后天", "周末", "下周一", "这周五", "星期天"),
            "period": ("凌晨", "傍晚", "半夜"),
            "task": ("交房租", "取快递", "还信用卡", "给花浇水", "去接孩子", "锻炼身体", "写周报",
                     "交电费", "看医生", "给妈妈打电话", "预约理发", "洗衣服", "倒垃圾", "遛狗",
                     "做饭", "复习功课", "背单词", "喂猫"),
            "city": ("天津", "重庆", "武汉", "长沙", "苏州", "郑州", "青岛", "大连", "厦门", "昆明",
                     "沈阳", "哈尔滨", "济南", "合肥", "福州", "南宁", "贵阳", "兰州", "乌鲁木齐",
                     "拉萨", "海口", "三亚", "桂林", "洛阳", "宁波", "无锡", "珠海", "太原"),
            "weather": ("气温多少度", "有没有雾霾", "刮风吗", "湿度大吗", "适合出门吗", "最高温度是多少",
                        "紫外线强不强", "会打雷吗"),
            "air": ("空气质量", "天气", "气温", "风力"),
            "span": ("几天", "个星期", "周末"),
            "sky": ("下雨", "下雪", "降温", "升温", "刮大风"),
            "place": ("火车站", "机场", "医院", "学校", "公园", "超市", "银行", "图书馆", "电影院",
                      "体育馆", "加油站", "停车场", "地铁站", "博物馆", "人民广场", "市政府",
                      "药店", "咖啡店", "菜市场", "游泳馆", "动物园", "购物中心"),
            "ticket": ("火车票", "机票", "高铁票", "汽车票"),
            "name": ("张伟", "王芳", "李娜", "刘洋", "陈静", "杨帆", "赵磊", "黄敏", "周强", "吴婷",
                     "徐杰", "孙丽", "马超", "朱琳", "胡军", "郭晓", "林峰", "何颖", "高远", "罗佳"),
            "contact": ("发微信", "发短信", "打视频电话"),
            "play": ("我要听", "给我放", "随便放"),
            "music": ("摇滚乐", "爵士乐", "民谣", "古典音乐", "钢琴曲", "相声", "评书", "新闻",
                      "广播", "有声小说", "英文歌", "摇篮曲"),
            "singer": ("小明", "阿杰", "大伟", "乐队", "合唱团"),
            "song": ("新专辑", "成名曲", "热门歌曲", "现场版", "所有歌"),
            "player": ("暂停播放", "继续播放", "下一首", "上一首", "单曲循环", "随机播放",
                       "收藏这首歌", "这首歌叫什么名字", "声音太大了", "静音"),
            "item": ("牛奶", "鸡蛋", "面包", "苹果", "香蕉", "大米", "酸奶", "西红柿", "土豆",
                     "洗发水", "牙膏", "纸巾", "啤酒", "猪肉", "青菜", "橙汁", "饼干", "咖啡"),
            "number": tuple(zh_number(n) for n in range(1, 100)),
            "digit": tuple(_ZH_DIGITS[1:]),
            "story": ("笑话", "故事", "成语故事", "绕口令", "谜语", "冷知识"),
        },
    )


def _en_demo() -> GrammarSpec:
    return GrammarSpec(
        templates=(
            "{please} turn {switch} the {room} {device}",
            "{please} switch {switch} the {device} in the {room}",
            "turn {switch} the {device} in {minutes} minutes",
            "{please} set the {room} temperature to {temp} degrees",
            "{please} turn the volume {updown}",
            "make the {room} lights {brightness}",
            "wake me up at {hour} {minute} {day}",
            "remind me to {task} in {minutes} minutes",
            "remind me to {task} at {hour} o'clock {day}",
            "set a timer for {minutes} minutes",
            "what's the weather like in {city} {day}",
            "will it {sky} in {city} {day}",
            "is it {feel} in {city} {day}",
            "how {feel} is it in {city}",
            "{contact} {person}",
            "{please} call {person} at {hour} o'clock",
            "{please} play some {music}",
            "play some {music} in the {room}",
            "what time is it",
            "what day is it {day}",
        ),
        held_out_templates=(
            "{please} turn the {device} {switch} in the {room}",
            "remind me at {hour} o'clock to {task}",
            "{day} will it {sky} in {city}",
            "{please} play some {music} {day}",
            "{contact} {person} in {minutes} minutes",
        ),
        slots={
            "please": ("", "please", "can you"),
            "switch": ("on", "off"),
            "room": ("living room", "bedroom", "kitchen", "bathroom", "office", "hallway", "garage"),
            "device": ("light", "lights", "fan", "heater", "lamp", "radio"),
            "temp": tuple(en_number(n) for n in range(16, 31)),
            "updown": ("up", "down"),
            "brightness": ("brighter", "darker", "warmer"),
            "hour": tuple(en_number(n) for n in range(1, 13)),
            "minute": ("o'clock", "fifteen", "thirty", "forty five"),
            "day": ("today", "tomorrow", "tonight", "on monday", "on friday", "this weekend"),
            "minutes": tuple(en_number(n) for n in range(2, 31)),
            "task": ("call mom", "take my pills", "drink some water", "buy milk", "feed the cat",
                     "water the plants", "go to bed"),
            "city": ("london", "paris", "tokyo", "berlin", "boston", "seattle", "chicago", "madrid"),
            "sky": ("rain", "snow"),
            "feel": ("cold", "hot", "warm", "windy", "sunny"),
            "contact": ("call", "text", "message"),
            "person": ("mom", "dad", "john", "sarah", "my sister", "my brother", "the office"),
            "music": ("jazz", "rock music", "classical music", "the news", "pop songs",
                      "relaxing music"),
        },
    )


def _en_full() -> GrammarSpec:
    return _en_demo().extended(
        templates=(
            "set the {device} in the {room} to {mode} mode",
            "change the lights to {color}",
            "dim the {room} lights to {percent} percent",
            "remind me to {task} on {month} {ordinal}",
            "remind me to {task} at {hour} {minute} {ampm}",
            "set an alarm for {hour} {minute} {ampm}",
            "cancel my {hour} o'clock alarm",
            "what's the {forecast} in {city} {day}",
            "do i need an umbrella in {city} {day}",
            "navigate to the nearest {place}",
            "how long does it take to get to the {place}",
            "find a {place} near me",
            "add {item} to my shopping list",
            "what's on my shopping list",
            "play {song} by {artist}",
            "{player}",
            "what's {number} plus {number}",
            "what's {number} times {digit}",
            "tell me a {story}",
            "what's the date {day}",
            "how many days until {month} {ordinal}",
        ),
        slots={
            "room": ("dining room", "garage", "basement", "kids room", "guest room", "porch",
                     "study", "attic"),
            "device": ("air conditioner", "tv", "humidifier", "air purifier", "vacuum",
                       "dishwasher", "washing machine", "oven", "coffee maker", "ceiling fan",
                       "floor lamp", "speaker", "thermostat", "curtains", "blinds"),
            "mode": ("cool", "heat", "eco", "sleep", "auto", "quiet", "turbo", "dry"),
            "color": ("red", "blue", "green", "yellow", "purple", "white", "orange", "pink",
                      "warm white", "daylight"),
            "percent": tuple(en_number(n) for n in range(10, 101, 10)),
            "month": ("january", "february", "march", "april", "may", "june", "july", "august",
                      "september", "october", "november", "december"),
            "ordinal": ("first", "second", "third", "fourth", "fifth", "sixth", "seventh",
                        "eighth", "ninth", "tenth", "eleventh", "twelfth", "fifteenth",
                        "twentieth", "twenty first", "thirtieth"),
            "minute": ("fifteen", "thirty", "forty five", "o five", "twenty", "fifty"),
            "ampm": ("a m", "p m", "in the morning", "in the evening"),
            "day": ("next week", "on sunday", "on tuesday", "on wednesday", "on thursday",
                    "on saturday", "tomorrow morning", "tomorrow night", "this afternoon"),
            "task": ("pay the rent", "pick up the kids", "pick up my package", "walk the dog",
                     "take out the trash", "book a haircut", "send the report", "call the doctor",
                     "do the laundry", "charge my phone", "renew my passport", "study for the test"),
            "city": ("new york", "los angeles", "san francisco", "sydney", "toronto", "dublin",
                     "rome", "amsterdam", "vienna", "singapore", "mumbai", "cairo", "lisbon",
                     "denver", "miami", "houston", "vancouver", "oslo", "prague", "athens"),
            "forecast": ("forecast", "temperature", "air quality", "humidity", "wind speed",
                         "uv index"),
            "place": ("gas station", "train station", "airport", "hospital", "pharmacy",
                      "supermarket", "bank", "library", "cinema", "park", "coffee shop",
                      "restaurant", "post office", "parking lot", "bus stop", "museum", "gym"),
            "item": ("eggs", "bread", "apples", "bananas", "rice", "yogurt", "tomatoes",
                     "potatoes", "shampoo", "toothpaste", "paper towels", "coffee", "butter",
                     "cheese", "orange juice", "chicken", "cereal", "dish soap"),
            "song": ("my favorite song", "something new", "the latest album", "the top hits",
                     "a love song", "the greatest hits"),
            "artist": ("the band", "my favorite artist", "the choir", "the orchestra"),
            "player": ("pause the music", "resume playback", "skip this song", "play the next song",
                       "go back to the previous song", "shuffle my playlist", "repeat this song",
                       "what song is this", "stop the music", "mute the speaker",
                       "turn it down a bit", "louder please"),
            "contact": ("video call", "send a message to", "send an email to", "text message"),
            "person": ("grandma", "grandpa", "my boss", "the dentist", "peter", "emma", "david",
                       "lucy", "michael", "olivia", "james", "sophia"),
            "music": ("country music", "hip hop", "podcasts", "audiobooks", "lullabies",
                      "piano music", "blues"),
            "number": tuple(en_number(n) for n in range(1, 100)),
            "digit": tuple(_EN_ONES[1:10]),
            "story": ("joke", "story", "fun fact", "riddle", "tongue twister", "bedtime story"),
        },
    )


_GRAMMAR_SPECS = {("zh", "demo"): _zh_demo, ("zh", "full"): _zh_full,
                  ("en", "demo"): _en_demo, ("en", "full"): _en_full}


class _IndexPool:
    """Distinct random indices from ``range(size)``: rejection sampling while the pool is
    mostly unused, then a shuffled list of the remainder (memory stays O(draws))."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._used: set[int] = set()
        self._rest: list[int] | None = None

    @property
    def exhausted(self) -> bool:
        return not self._rest if self._rest is not None else len(self._used) >= self.size

    def draw(self, rng: np.random.Generator) -> int:
        if self._rest is None and 2 * len(self._used) >= self.size:
            rest = np.array([i for i in range(self.size) if i not in self._used], dtype=np.int64)
            rng.shuffle(rest)
            self._rest = rest.tolist()
        if self._rest is not None:
            return self._rest.pop()
        while True:
            index = int(rng.integers(self.size))
            if index not in self._used:
                self._used.add(index)
                return index


class Grammar:
    """A compiled template grammar that can count, expand and sample its sentences.

    Every template is a mixed-radix number over its slots (slot values may nest further
    ``{slot}`` references), so a derivation index decodes straight into a sentence without
    enumerating the language.
    """

    def __init__(self, spec: GrammarSpec) -> None:
        empty = [name for name, values in spec.slots.items() if not values]
        if empty or not spec.templates:
            raise ValueError(f"grammar needs templates and non-empty slots (empty: {empty})")
        self._slots = {name: [self._parse(v) for v in values] for name, values in spec.slots.items()}
        self._templates = [self._parse(t) for t in spec.templates]
        self._slot_size: dict[str, int] = {}
        self._slot_cum: dict[str, list[int]] = {}
        for name in self._slots:
            self._size_of_slot(name, ())
        self.template_sizes = [self._size(t) for t in self._templates]

    @staticmethod
    def _parse(text: str) -> _Parsed:
        pieces = _SLOT.split(text)
        return tuple(pieces[0::2]), tuple(pieces[1::2])

    def _size(self, parsed: _Parsed, stack: tuple[str, ...] = ()) -> int:
        return math.prod(self._size_of_slot(ref, stack) for ref in parsed[1])

    def _size_of_slot(self, name: str, stack: tuple[str, ...]) -> int:
        if name in self._slot_size:
            return self._slot_size[name]
        if name not in self._slots:
            raise KeyError(f"grammar refers to unknown slot {{{name}}}")
        if name in stack:
            raise ValueError(f"recursive grammar slot {{{name}}}")
        sizes = [self._size(alt, stack + (name,)) for alt in self._slots[name]]
        self._slot_cum[name] = list(itertools.accumulate(sizes))
        self._slot_size[name] = sum(sizes)
        return self._slot_size[name]

    @property
    def num_derivations(self) -> int:
        """Upper bound on the number of distinct sentences (derivations may coincide)."""
        return sum(self.template_sizes)

    def charset(self) -> set[str]:
        """Every non-space character that can appear in a sentence."""
        chars: set[str] = set()
        for literals, _ in self._templates + [alt for alts in self._slots.values() for alt in alts]:
            chars.update(c for piece in literals for c in piece if not c.isspace())
        return chars

    def expand(self, template: int, index: int) -> str:
        """Sentence number ``index`` (``0 <= index < template_sizes[template]``) of a template."""
        return " ".join(self._expand(self._templates[template], index).split())

    def _expand(self, parsed: _Parsed, index: int) -> str:
        literals, refs = parsed
        digits = []
        for ref in reversed(refs):
            index, digit = divmod(index, self._slot_size[ref])
            digits.append(digit)
        out = [literals[0]]
        for ref, digit, literal in zip(refs, reversed(digits), literals[1:], strict=True):
            out.append(self._expand_slot(ref, digit))
            out.append(literal)
        return "".join(out)

    def _expand_slot(self, name: str, index: int) -> str:
        cum = self._slot_cum[name]
        alt = bisect.bisect_right(cum, index)
        return self._expand(self._slots[name][alt], index - (cum[alt - 1] if alt else 0))

    def sample(self, num: int, rng: np.random.Generator,
               accept: Callable[[str], bool] | None = None) -> list[str]:
        """``num`` sentences, distinct until the grammar is exhausted (then a new round starts).

        A template is picked with probability proportional to the square root of its size
        (capped at ``_WEIGHT_CAP``), so neither tiny nor huge templates dominate; the sentence
        within a template is uniform. Only sentences ``accept`` approves are kept.
        The result for ``num`` is a prefix of the result for any larger ``num``.
        """
        weights = np.sqrt(np.minimum(np.array(self.template_sizes, dtype=np.float64), _WEIGHT_CAP))
        pools = [_IndexPool(size) for size in self.template_sizes]
        active = weights.copy()
        cum = np.cumsum(active)
        seen: set[str] = set()
        out: list[str] = []
        while len(out) < num:
            if cum[-1] <= 0:  # every template exhausted: allow repeats from here on
                if not seen:
                    raise ValueError("no sentence of this grammar is accepted")
                pools = [_IndexPool(size) for size in self.template_sizes]
                active = weights.copy()
                cum = np.cumsum(active)
                seen.clear()
            pick = int(np.searchsorted(cum, rng.random() * cum[-1], side="right"))
            pick = min(pick, int(np.flatnonzero(active)[-1]))
            sentence = self.expand(pick, pools[pick].draw(rng))
            if pools[pick].exhausted:
                active[pick] = 0.0
                cum = np.cumsum(active)
            if sentence not in seen and (accept is None or accept(sentence)):
                seen.add(sentence)
                out.append(sentence)
        return out


@cache
def get_grammar(language: str = "zh", grammar: str = "demo", held_out: bool = False) -> Grammar:
    """The compiled grammar for ``language`` ('zh'/'en') and flavour ('demo'/'full'); with
    ``held_out``, the same slots in its held-out templates."""
    if (language, grammar) not in _GRAMMAR_SPECS:
        raise ValueError(f"no grammar {grammar!r} for language {language!r}; "
                         f"languages: {LANGUAGES}, grammars: {GRAMMARS}")
    spec = _GRAMMAR_SPECS[(language, grammar)]()
    return Grammar(GrammarSpec(spec.held_out_templates, spec.slots) if held_out else spec)
