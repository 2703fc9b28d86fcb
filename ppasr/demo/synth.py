"""Synthetic demo corpus: template-grammar sentences spoken by eSpeak NG.

Sentences come from small data-driven grammars (word lists plus ``{slot}`` templates) for
smart-home / assistant commands, in Mandarin or English, in a compact ``demo`` flavour (about a
hundred distinct Hanzi, short sentences) or a richer ``full`` one. Each sentence is spoken by
eSpeak NG with a voice variant, speaking rate and pitch drawn per utterance from a seeded RNG,
then trimmed, resampled to 16 kHz, padded with a little silence and dithered.

A corpus is one of three splits (``SPLITS``). ``train`` and ``test`` share voices, rates, pitches
and templates; ``unseen`` is spoken by voice variants, and says sentence templates, that ``train``
never uses, at rates and pitches partly outside its ranges: it measures whether a model learned
Mandarin or the training voices. Every sentence belongs either to training or to testing
(``is_test_sentence``), so no test sentence can occur in any training corpus, whatever the sizes
and seeds.

Mandarin is spoken from tone-numbered pinyin with the ``cmn-latn-pinyin`` voice: the plain
``cmn`` voice reads many characters as pinyin letters with the tone digit said in English
(哪儿 -> "na three ... five"), which would teach a recogniser the wrong sounds.

eSpeak NG keeps synthesis state in C statics that ``espeak_Terminate`` does not reset, so the
same call gives different samples depending on what was spoken before. To make every
utterance depend only on its own parameters, the library engine loads a private copy of
``libespeak-ng`` and reloads it for each utterance; the CLI fallback runs one process per
utterance, which is fresh by construction.
"""
from __future__ import annotations

import bisect
import ctypes
import itertools
import math
import multiprocessing
import os
import re
import shutil
import subprocess
import tempfile
import wave
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cache

import numpy as np

SAMPLE_RATE = 16000
LANGUAGES = ("zh", "en")
GRAMMARS = ("demo", "full")
BACKENDS = ("auto", "library", "cli")

GAIN_RANGE = (0.3, 0.9)  # peak level after normalisation
PAD_RANGE = (0.05, 0.3)  # seconds of silence added before and after the speech
NOISE_DB_RANGE = (-66.0, -54.0)  # dither level, dBFS (RMS)
VOICES = {"zh": ("cmn-latn-pinyin",), "en": ("en-us", "en")}

# eSpeak NG's voice variants (espeak-ng-data/voices/!v), both synthesisers (formant and klatt).
# Held out for the ``unseen`` split: whole families of near-identical files (Gene*, iven*, steph*,
# edward*) and single variants of every kind (male, female, klatt, echo, short syllables), chosen
# before any model was evaluated on them. Unvoiced (whispering) variants are used by no split:
# whispered Mandarin has no pitch, so it has no tones.
HELD_OUT_VARIANTS = ("Annie", "Denis", "Gene", "Gene2", "Reed", "RicishayMax2", "david", "ed", "edward",
                     "edward2", "grandma", "iven", "iven2", "iven3", "iven4", "klatt3", "quincy", "robert",
                     "steph", "steph2", "steph3", "travis")
UNVOICED_VARIANTS = ("caleb", "whisper", "whisperf")
TRAIN_VARIANTS = ("Alex", "Alicia", "Andrea", "Andy", "AnxiousAndy", "Demonic", "Diogo", "Henrique", "Hugo",
                  "Jacky", "Lee", "Marco", "Mario", "Michael", "Mike", "Mr serious", "Nguyen", "RicishayMax",
                  "RicishayMax3", "Storm", "Tweaky", "UniRobot", "adam", "anika", "anikaRobot", "announcer",
                  "antonio", "aunty", "belinda", "benjamin", "boris", "croak", "f1", "f2", "f3", "f4", "f5",
                  "fast", "grandpa", "gustave", "ian", "john", "kaukovalta", "klatt", "klatt2", "klatt4",
                  "klatt5", "klatt6", "linda", "m1", "m2", "m3", "m4", "m5", "m6", "m7", "m8", "marcelo",
                  "max", "michel", "miguel", "mike2", "norbert", "pablo", "paul", "pedro", "rob", "robosoft",
                  "robosoft2", "robosoft3", "robosoft4", "robosoft5", "robosoft6", "robosoft7", "robosoft8",
                  "sandro", "shelby", "victor", "zac")


@dataclass(frozen=True)
class Split:
    """Who speaks a split and what they say."""

    variants: tuple[str, ...]
    rates: tuple[int, int]  # espeak words per minute (a Mandarin syllable counts as a word)
    pitches: tuple[int, int]  # espeak base pitch, 0-99 (50 is the voice's default)
    held_out_templates: bool  # the grammar's held-out templates instead of its training ones


SPLITS = {
    "train": Split(TRAIN_VARIANTS, (110, 200), (20, 80), held_out_templates=False),
    "test": Split(TRAIN_VARIANTS, (110, 200), (20, 80), held_out_templates=False),
    "unseen": Split(HELD_OUT_VARIANTS, (140, 220), (10, 90), held_out_templates=True),
}
TEST_SENTENCE_SHARE = 10  # one sentence in this many is reserved for the test splits


def is_test_sentence(sentence: str) -> bool:
    """Whether a sentence belongs to the test splits (a fixed hash: the same on every machine)."""
    return zlib.crc32(sentence.encode("utf-8")) % TEST_SENTENCE_SHARE == 0

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


def sample_sentences(num_samples: int, seed: int = 0, language: str = "zh",
                     grammar: str = "demo", split: str = "train") -> list[str]:
    """The sentences ``generate_corpus`` speaks for this seed and split, in order (utterance 1 first).

    ``train`` says only training sentences, ``test`` and ``unseen`` only test sentences
    (``is_test_sentence``).
    """
    wanted = split != "train"
    return get_grammar(language, grammar, SPLITS[split].held_out_templates).sample(
        num_samples, np.random.default_rng(seed), lambda sentence: is_test_sentence(sentence) == wanted)


# --------------------------------------------------------------------------- pronunciation

# Readings pypinyin gets wrong in these grammars (it reads 调 in 调到 as diao4, and applies 一
# sandhi inside numbers, weekdays and clock times); they win over pypinyin.
_ZH_PRONUNCIATIONS = {
    "调到": "tiao2 dao4", "调成": "tiao2 cheng2", "调大一点": "tiao2 da4 yi4 dian3",
    "调小一点": "tiao2 xiao3 yi4 dian3", "调高一点": "tiao2 gao1 yi4 dian3",
    "调低一点": "tiao2 di1 yi4 dian3", "一首": "yi4 shou3", "一个": "yi2 ge4", "一下": "yi2 xia4",
    "一刻": "yi2 ke4", "成都": "cheng2 du1",
}
_ZH_OVERRIDE = re.compile("(" + "|".join(sorted(_ZH_PRONUNCIATIONS, key=len, reverse=True)) + ")")


def to_pinyin(text: str) -> str:
    """Tone-numbered pinyin (neutral tone 5, 不 and third-tone sandhi) for the pinyin voice.

    一 is read yi1 except in the measure-word phrases listed in ``_ZH_PRONUNCIATIONS``.
    """
    from pypinyin import Style, lazy_pinyin

    syllables: list[str] = []
    for piece in _ZH_OVERRIDE.split(text):
        if piece in _ZH_PRONUNCIATIONS:
            syllables.extend(_ZH_PRONUNCIATIONS[piece].split())
        elif piece:
            readings = lazy_pinyin(piece, style=Style.TONE3, neutral_tone_with_five=True,
                                   tone_sandhi=True)
            if len(readings) == len(piece):
                readings = ["yi1" if char == "一" else reading
                            for char, reading in zip(piece, readings, strict=True)]
            syllables.extend(readings)
    return " ".join(syllables)


def speech_text(sentence: str, language: str) -> str:
    """What eSpeak is given to read ``sentence`` aloud."""
    return to_pinyin(sentence) if language == "zh" else sentence


# --------------------------------------------------------------------------- eSpeak engines

_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_PARAM_RATE = 1
_PARAM_PITCH = 3
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int,
                                   ctypes.c_void_p)


@dataclass(frozen=True)
class EngineConfig:
    """How a (worker) process reaches eSpeak NG: a private library copy or the CLI."""

    kind: str  # "library" or "cli"
    path: str  # private libespeak-ng copy, or the espeak-ng executable
    data: str = ""  # espeak-ng-data directory (library only)


class EspeakLibrary:
    """libespeak-ng through ctypes, reloaded per call so that no state leaks between calls."""

    def __init__(self, library: str, data: str) -> None:
        self.library = library
        self.data = data
        self._chunks: list[np.ndarray] = []
        self._callback = _SYNTH_CALLBACK(self._collect)

    def _collect(self, wav: ctypes._Pointer[ctypes.c_short], count: int, _events: int) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        return 0

    @staticmethod
    def _bind(lib: ctypes.CDLL) -> None:
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_Synth.argtypes = [ctypes.c_char_p, ctypes.c_size_t, ctypes.c_uint, ctypes.c_int,
                                     ctypes.c_uint, ctypes.c_uint, ctypes.c_void_p, ctypes.c_void_p]
        lib.espeak_TextToPhonemes.argtypes = [ctypes.POINTER(ctypes.c_char_p), ctypes.c_int, ctypes.c_int]
        lib.espeak_TextToPhonemes.restype = ctypes.c_char_p

    @contextmanager
    def _session(self, voice: str) -> Iterator[tuple[ctypes.CDLL, int]]:
        """Load a pristine library instance with ``voice`` selected; unload it afterwards."""
        import _ctypes

        lib = ctypes.CDLL(self.library)
        try:
            self._bind(lib)
            sample_rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, self.data.encode(),
                                                _INITIALIZE_DONT_EXIT)
            if sample_rate <= 0:
                raise RuntimeError(f"espeak_Initialize failed ({sample_rate}) with data {self.data}")
            try:
                if lib.espeak_SetVoiceByName(voice.encode()) != 0:
                    raise RuntimeError(f"eSpeak NG has no voice {voice!r}")
                yield lib, sample_rate
            finally:
                lib.espeak_Terminate()
        finally:
            _ctypes.dlclose(lib._handle)

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> tuple[np.ndarray, int]:
        """int16 samples and their sample rate for ``text`` read by ``voice`` (may be 'v+variant').

        ``seed`` seeds the noise of breathy voices, which comes from libc's ``rand()`` (and
        eSpeak's own generator in versions that have one).
        """
        data = text.encode("utf-8")
        with self._session(voice) as (lib, sample_rate):
            ctypes.CDLL(None).srand(ctypes.c_uint(seed))
            if hasattr(lib, "espeak_ng_SetRandSeed"):
                lib.espeak_ng_SetRandSeed(ctypes.c_long(seed))
            lib.espeak_SetSynthCallback(self._callback)
            lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
            lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
            self._chunks = []
            status = lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            lib.espeak_Synchronize()
            chunks, self._chunks = self._chunks, []
        if status != 0:
            raise RuntimeError(f"espeak_Synth failed ({status}) for {text!r}")
        return (np.concatenate(chunks) if chunks else np.zeros(0, np.int16)), sample_rate

    def phonemes(self, text: str, voice: str) -> str:
        """eSpeak's phoneme mnemonics for ``text``, clause by clause."""
        buffer = ctypes.create_string_buffer(text.encode("utf-8"))
        cursor = ctypes.c_char_p(ctypes.addressof(buffer))
        clauses = []
        with self._session(voice) as (lib, _):
            while cursor.value:
                clauses.append(lib.espeak_TextToPhonemes(ctypes.byref(cursor), _CHARS_UTF8, 0).decode())
        return " ".join(clauses)

    def variants(self) -> set[str]:
        """Names of the voice variants in the data directory."""
        return set(os.listdir(os.path.join(self.data, "voices", "!v")))


class EspeakCli:
    """The ``espeak-ng`` program, one process per call (slower, but stateless by design)."""

    def __init__(self, executable: str) -> None:
        self.executable = executable

    def _run(self, args: list[str], text: str) -> bytes:
        proc = subprocess.run([self.executable, *args, "-b", "1", "--stdin"], input=text.encode("utf-8"),
                              capture_output=True, check=False)
        if proc.returncode != 0:
            message = proc.stderr.decode(errors="replace").strip()
            raise RuntimeError(f"espeak-ng failed ({proc.returncode}): {message}")
        return proc.stdout

    def synthesize(self, text: str, voice: str, rate: int, pitch: int, seed: int) -> tuple[np.ndarray, int]:
        """int16 samples and their sample rate (streamed WAV: the header's sizes are bogus).

        ``seed`` is unused: every call is a fresh process whose noise generators start alike.
        """
        raw = self._run(["-v", voice, "-s", str(rate), "-p", str(pitch), "--stdout"], text)
        if raw[:4] != b"RIFF" or raw[8:12] != b"WAVE":
            raise RuntimeError(f"espeak-ng wrote no WAV for {text!r}")
        offset, sample_rate = 12, 0
        while offset + 8 <= len(raw):
            chunk, size = raw[offset:offset + 4], int.from_bytes(raw[offset + 4:offset + 8], "little")
            if chunk == b"fmt ":
                sample_rate = int.from_bytes(raw[offset + 12:offset + 16], "little")
            elif chunk == b"data":
                body = raw[offset + 8:]
                return np.frombuffer(body[:len(body) // 2 * 2], dtype="<i2").astype(np.int16), sample_rate
            offset += 8 + size
        raise RuntimeError("espeak-ng WAV has no data chunk")

    def phonemes(self, text: str, voice: str) -> str:
        """eSpeak's phoneme mnemonics for ``text``."""
        return " ".join(self._run(["-q", "-x", "-v", voice], text).decode().split())

    def variants(self) -> set[str]:
        """Names of the installed voice variants (from ``--voices=variant``)."""
        listing = self._run(["--voices=variant"], "").decode()
        return {token[3:] for token in listing.split() if token.startswith("!v/")}


Engine = EspeakLibrary | EspeakCli


@contextmanager
def open_engine(backend: str = "auto") -> Iterator[EngineConfig]:
    """Locate eSpeak NG: the pip ``espeakng-loader`` library (preferred), else ``espeak-ng``.

    For the library a private copy is made in a temporary directory for the duration of the
    context (see the module docstring for why).
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}; choose one of {BACKENDS}")
    loader = None
    if backend in ("auto", "library"):
        try:
            import espeakng_loader as loader
        except ImportError:
            if backend == "library":
                raise RuntimeError("backend 'library' needs `pip install espeakng-loader`") from None
    if loader is not None:
        with tempfile.TemporaryDirectory(prefix="ppasr-espeak-") as tmp:
            private = os.path.join(tmp, os.path.basename(loader.get_library_path()))
            shutil.copyfile(loader.get_library_path(), private)
            yield EngineConfig("library", private, loader.get_data_path())
        return
    executable = shutil.which("espeak-ng")
    if executable is None:
        raise RuntimeError("eSpeak NG not found: `pip install espeakng-loader` "
                           "(or install the espeak-ng program)")
    yield EngineConfig("cli", executable)


def create_engine(config: EngineConfig) -> Engine:
    """The engine object for a config (one per process)."""
    return EspeakLibrary(config.path, config.data) if config.kind == "library" else EspeakCli(config.path)


# --------------------------------------------------------------------------- utterances


@dataclass(frozen=True)
class Utterance:
    """Everything needed to render one audio file; drawn in the parent, rendered anywhere."""

    path: str
    text: str
    speech: str
    voice: str
    rate: int
    pitch: int
    gain: float
    lead: float
    trail: float
    noise_db: float
    seed: int


def plan_utterances(sentences: Sequence[str], paths: Sequence[str], seed: int, language: str,
                    split: str, installed: set[str]) -> list[Utterance]:
    """Per-utterance voice and signal parameters, each from its own ``(seed, split, index)`` RNG.

    Voices are the split's variants that ``installed`` (the engine's variant names) has.
    """
    spec = SPLITS[split]
    variants = [v for v in spec.variants if v in installed]
    if not variants:
        raise RuntimeError(f"eSpeak NG has none of the voice variants of the {split!r} split")
    plans = []
    for index, (sentence, path) in enumerate(zip(sentences, paths, strict=True)):
        rng = np.random.default_rng([seed, list(SPLITS).index(split), index])
        voice = VOICES[language][int(rng.integers(len(VOICES[language])))]
        voice += "+" + variants[int(rng.integers(len(variants)))]
        plans.append(Utterance(
            path=path, text=sentence, speech=speech_text(sentence, language), voice=voice,
            rate=int(rng.integers(spec.rates[0], spec.rates[1] + 1)),
            pitch=int(rng.integers(spec.pitches[0], spec.pitches[1] + 1)),
            gain=float(rng.uniform(*GAIN_RANGE)), lead=float(rng.uniform(*PAD_RANGE)),
            trail=float(rng.uniform(*PAD_RANGE)), noise_db=float(rng.uniform(*NOISE_DB_RANGE)),
            seed=int(rng.integers(2**31))))
    return plans


def trim_silence(samples: np.ndarray, sample_rate: int, threshold_db: float = -40.0,
                 margin: float = 0.02) -> np.ndarray:
    """Cut leading/trailing audio whose 10 ms RMS is ``threshold_db`` below the loudest frame."""
    frame = max(1, sample_rate // 100)
    count = len(samples) // frame
    if count == 0:
        return samples
    rms = np.sqrt(np.mean(samples[:count * frame].reshape(count, frame).astype(np.float64) ** 2, axis=1))
    loud = np.flatnonzero(rms > rms.max() * 10 ** (threshold_db / 20))
    if len(loud) == 0:
        return samples
    keep = int(margin * sample_rate)
    return samples[max(0, loud[0] * frame - keep):min(len(samples), (loud[-1] + 1) * frame + keep)]


def render(utterance: Utterance, engine: Engine) -> np.ndarray:
    """Synthesise, trim, resample to 16 kHz, level, pad and dither: int16 samples."""
    import soxr

    raw, rate = engine.synthesize(utterance.speech, utterance.voice, utterance.rate, utterance.pitch,
                                  utterance.seed)
    audio = trim_silence(raw.astype(np.float32) / 32768.0, rate)
    if not np.any(audio):
        raise RuntimeError(f"eSpeak produced silence for {utterance.text!r} ({utterance.voice})")
    if rate != SAMPLE_RATE:
        audio = soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ")
    audio = audio * (utterance.gain / np.max(np.abs(audio)))
    audio = np.concatenate([np.zeros(round(utterance.lead * SAMPLE_RATE), np.float32), audio,
                            np.zeros(round(utterance.trail * SAMPLE_RATE), np.float32)])
    noise = np.random.default_rng(utterance.seed).standard_normal(len(audio))
    audio = audio + noise * 10 ** (utterance.noise_db / 20)
    return np.clip(np.round(audio * 32767.0), -32768, 32767).astype("<i2")


def write_wav(path: str, samples: np.ndarray, sample_rate: int = SAMPLE_RATE) -> None:
    """Write mono 16-bit PCM."""
    with wave.open(path, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(sample_rate)
        out.writeframes(samples.astype("<i2").tobytes())


# --------------------------------------------------------------------------- noise clips

NOISE_KINDS = ("white", "pink", "brown", "hum", "babble")
NOISE_SECONDS = 5.0
NOISE_RMS = 0.1  # the noise augmentor scales each clip to its SNR; this only keeps files well-levelled


def colored_noise(length: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown)."""
    spectrum = np.fft.rfft(rng.standard_normal(length))
    freqs = np.fft.rfftfreq(length)
    freqs[0] = freqs[1]
    return np.fft.irfft(spectrum / freqs ** (exponent / 2), n=length)


def mains_hum(length: int, rng: np.random.Generator) -> np.ndarray:
    """50 or 60 Hz mains hum with decaying harmonics over a faint hiss."""
    t = np.arange(length) / SAMPLE_RATE
    base = float(rng.choice([50.0, 60.0]))
    hum = sum(rng.uniform(0.3, 1.0) / k * np.sin(2 * np.pi * base * k * t + rng.uniform(0, 2 * np.pi))
              for k in range(1, 9))
    return hum + 0.05 * rng.standard_normal(length)


def babble(length: int, rng: np.random.Generator, engine: Engine, language: str, grammar: str) -> np.ndarray:
    """Three to six training-split voices talking at once, each looped over the clip from a random offset."""
    count = int(rng.integers(3, 7))
    seed = int(rng.integers(2**31))
    plans = plan_utterances(sample_sentences(count, seed, language, grammar), [""] * count, seed, language,
                            "train", engine.variants())
    mix = np.zeros(length)
    for plan in plans:
        voice = render(plan, engine).astype(np.float64)
        mix += np.roll(np.resize(voice, length), int(rng.integers(length)))
    return mix


def generate_noise(num_clips: int, seed: int = 0, language: str = "zh", grammar: str = "demo",
                   name: str = "demo", output_dir: str = "dataset", backend: str = "auto") -> str:
    """Write ``num_clips`` noise clips (``NOISE_KINDS`` in turn, 5 s, 16 kHz) for noise augmentation.

    They go to ``<output_dir>/audio/noise/`` (create_data.py lists that folder in manifest.noise);
    babble is spoken by training voices only. Returns the folder.
    """
    folder = os.path.join(output_dir, "audio", "noise")
    os.makedirs(folder, exist_ok=True)
    length = int(NOISE_SECONDS * SAMPLE_RATE)
    with open_engine(backend) as config:
        engine = create_engine(config)
        for index in range(num_clips):
            kind = NOISE_KINDS[index % len(NOISE_KINDS)]
            rng = np.random.default_rng([seed, len(SPLITS), index])
            if kind == "hum":
                noise = mains_hum(length, rng)
            elif kind == "babble":
                noise = babble(length, rng, engine, language, grammar)
            else:
                noise = colored_noise(length, NOISE_KINDS.index(kind), rng)
            noise *= NOISE_RMS / np.sqrt(np.mean(noise ** 2))
            samples = np.clip(np.round(noise * 32767.0), -32768, 32767)
            write_wav(os.path.join(folder, f"{name}_noise_{index + 1:03d}_{kind}.wav"), samples)
    return folder


_worker_engine: Engine | None = None


def _init_worker(config: EngineConfig) -> None:
    global _worker_engine
    _worker_engine = create_engine(config)


def _render_to_file(utterance: Utterance) -> None:
    assert _worker_engine is not None, "worker not initialised"
    write_wav(utterance.path, render(utterance, _worker_engine))


def generate_corpus(num_samples: int, seed: int = 0, language: str = "zh", grammar: str = "demo",
                    name: str = "demo", output_dir: str = "dataset", num_workers: int | None = None,
                    backend: str = "auto", progress: bool = True, split: str = "train") -> str:
    """Synthesise ``num_samples`` utterances of a split and write PPASR's annotation file.

    ``train``: audio goes to ``<output_dir>/audio/<name>/<name>_000001.wav`` ... and the annotation
    ``<output_dir>/annotation/<name>.txt`` has one ``path<TAB>text`` line per utterance. ``test`` and
    ``unseen``: audio goes to ``audio/<name>_<split>/`` and the lines into ``annotation/test.txt``
    (create_data.py's test set), replacing that folder's earlier lines and keeping all others.
    Paths are as written here (relative to the current directory unless ``output_dir`` is
    absolute). Identical arguments give identical files, whatever ``num_workers`` is.
    Returns the annotation path.
    """
    from ppasr.data.prepare import TEST_ANNOTATION, merge_test_lines, write_lines

    if language not in LANGUAGES:
        raise ValueError(f"unknown language {language!r}; choose one of {LANGUAGES}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {tuple(SPLITS)}")
    if num_samples < 1:
        raise ValueError("num_samples must be at least 1")
    if not re.fullmatch(r"[\w.-]+", name):
        raise ValueError(f"name {name!r} must be a plain file name (letters, digits, _ . -)")
    from tqdm import tqdm

    folder = name if split == "train" else f"{name}_{split}"
    sentences = sample_sentences(num_samples, seed, language, grammar, split)
    audio_dir = os.path.join(output_dir, "audio", folder)
    os.makedirs(audio_dir, exist_ok=True)
    os.makedirs(os.path.join(output_dir, "annotation"), exist_ok=True)
    paths = [os.path.join(audio_dir, f"{folder}_{i:06d}.wav") for i in range(1, num_samples + 1)]
    workers = max(1, min(num_workers or os.cpu_count() or 1, num_samples))
    with open_engine(backend) as config:
        plans = plan_utterances(sentences, paths, seed, language, split, create_engine(config).variants())
        bar = tqdm(total=num_samples, unit="utt", desc=f"synthesising {folder}", disable=not progress)
        if workers == 1:
            engine = create_engine(config)
            for plan in plans:
                write_wav(plan.path, render(plan, engine))
                bar.update()
        else:
            context = multiprocessing.get_context("spawn")  # no inherited library or thread state
            chunk = max(1, min(16, num_samples // (workers * 8)))
            # recycled now and then: each library reload leaks a couple of KB inside eSpeak/libdl
            with context.Pool(workers, initializer=_init_worker, initargs=(config,),
                              maxtasksperchild=5000) as pool:
                for _ in pool.imap_unordered(_render_to_file, plans, chunksize=chunk):
                    bar.update()
        bar.close()
    lines = [f"{plan.path}\t{plan.text}" for plan in plans]
    if split == "train":
        annotation = os.path.join(output_dir, "annotation", f"{name}.txt")
        write_lines(annotation, lines)
    else:
        annotation = os.path.join(output_dir, "annotation", TEST_ANNOTATION)
        merge_test_lines(annotation, audio_dir.replace("\\", "/") + "/", lines)
    return annotation
